# bash completion for dsync.  Install: copy to
# /usr/share/bash-completion/completions/dsync (or source it from ~/.bashrc).

_dsync_home() {
    # The home the command line names with -home, else $DSYNC_HOME, else ~/dxync.
    local i
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        if [[ ${COMP_WORDS[i]} == -home || ${COMP_WORDS[i]} == --home ]]; then
            printf '%s\n' "${COMP_WORDS[i + 1]}"
            return
        fi
    done
    printf '%s\n' "${DSYNC_HOME:-$HOME/dxync}"
}

_dsync_repos() {
    local home f
    home=$(_dsync_home)
    for f in "$home"/repos/*.conf; do
        [[ -e $f ]] || continue
        f=${f##*/}
        printf '%s\n' "${f%.conf}"
    done
}

_dsync() {
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local options="-home -sync -force -nolog -test -offline -emoff -cleanlog -example
        -setup -repo -save -src -timeset -gendsync -service -foreground -stop-service
        -reload -startup -h --help --version"
    local commands="ftpsync ftpsync-cron demo rsync-ssl-tunnel"
    case $prev in
        -home | --home | -save | --save)
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            return
            ;;
        -sync | --sync | -repo | --repo)
            mapfile -t COMPREPLY < <(compgen -W "$(_dsync_repos)" -- "$cur")
            return
            ;;
        -src | --src | -timeset | --timeset)
            return
            ;;
        ftpsync)
            mapfile -t COMPREPLY < <(compgen -W "sync:all sync:stage1 sync:stage2 sync:archive: sync:callback sync:mhop -T -test -offline" -- "$cur")
            return
            ;;
    esac
    if ((COMP_CWORD == 1)); then
        mapfile -t COMPREPLY < <(compgen -W "$options $commands" -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
    fi
}

complete -F _dsync dsync
