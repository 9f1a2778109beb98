//! What `dsync -test` says each repository will do: how it syncs, from which
//! upstream and why that one, into which folder. Intranet mode, a pasted
//! ftpsync block and the catalog can each decide the upstream; the operator
//! should not have to work out which did.

use super::home::Home;
use super::repo::Repo;
use super::upstream::{self, Catalog, Source};
use super::xync::{self, Global};

/// One line per repository that loads, e.g.
/// `kali: ftpsync's two stages from rsync://10.1.1.50/kali/ (intranet mode: intradd= of xync.conf) into /mirror/kali`.
pub fn upstream_lines(home: &Home) -> Vec<String> {
    let (global, _) = xync::load(&home.xync_conf());
    let (repos, _) = super::repo_files::load(home);
    let (catalog, _) = upstream::load_catalog(home);
    let context = Context {
        global: &global,
        home,
        catalog: &catalog,
    };
    repos
        .iter()
        .filter_map(|repo| {
            let source = upstream::resolve(repo, &global, home).ok()?;
            Some(line(repo, &context, &source))
        })
        .collect()
}

/// What every repository's line is judged against, read once.
struct Context<'a> {
    global: &'a Global,
    home: &'a Home,
    catalog: &'a Catalog,
}

fn line(repo: &Repo, context: &Context<'_>, source: &Source) -> String {
    let (how, from) = match source {
        Source::Dtp(url) => ("DTP", url.clone()),
        Source::Rsync(urls) => ("rsync", urls.join(" or ")),
        Source::Ftpsync(urls) if urls.is_empty() => (
            "ftpsync's two stages",
            repo.ftpsync
                .as_ref()
                .and_then(|b| b.pasted_upstream(&b.eval(&repo.file).ok()?))
                .unwrap_or_default(),
        ),
        Source::Ftpsync(urls) => ("ftpsync's two stages", urls.join(" or ")),
    };
    format!(
        "{}: {how} from {from} ({}) into {}",
        repo.name,
        why(repo, context, source),
        repo.save.display()
    )
}

/// Which setting chose the upstream (upstream::resolve's order).
fn why(repo: &Repo, context: &Context<'_>, source: &Source) -> String {
    let urls = match source {
        Source::Dtp(_) => return "dsync-url=".into(),
        Source::Ftpsync(urls) if urls.is_empty() => {
            return "RSYNC_HOST of the ftpsync block".into();
        }
        Source::Ftpsync(urls) | Source::Rsync(urls) => urls,
    };
    let first = urls.first().map(String::as_str);
    if let Some(addr) = upstream::intranet_address(repo, context.global)
        && first == Some(upstream::intranet_url(addr, &repo.name).as_str())
    {
        let whose = match repo.intradd {
            Some(_) => repo.file.display().to_string(),
            None => context.home.xync_conf().display().to_string(),
        };
        return format!("intranet mode: intradd={addr} in {whose}");
    }
    if repo.src.is_some() {
        return "src=".into();
    }
    match context.catalog.contains_key(&repo.name) {
        true => "the upstream catalog".into(),
        false => "api= of xync.conf".into(),
    }
}
