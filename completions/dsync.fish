# fish completion for dsync.  Install: copy to
# /usr/share/fish/vendor_completions.d/dsync.fish.

function __dsync_repos
    set -l home $DSYNC_HOME
    test -n "$home"; or set home ~/dxync
    set -l words (commandline -opc)
    for i in (seq (count $words))
        if test "$words[$i]" = -home; and test $i -lt (count $words)
            set home $words[(math $i + 1)]
        end
    end
    for f in $home/repos/*.conf
        basename $f .conf
    end
end

complete -c dsync -f
complete -c dsync -o home -r -a '(__fish_complete_directories)' -d 'the dsync home instead of ~/dxync'
complete -c dsync -o sync -x -a '(__dsync_repos)' -d 'sync one repository now'
complete -c dsync -o force -d 'sync every repository now, creating missing folders'
complete -c dsync -o nolog -d 'run in the background'
complete -c dsync -o test -d 'check every configuration file'
complete -c dsync -o offline -d 'with -test: do not contact upstreams'
complete -c dsync -o emoff -d 'stop every running sync now'
complete -c dsync -o cleanlog -d 'delete logs older than 7 days'
complete -c dsync -o example -d 'list the repositories dsync can mirror; FILE or all: print samples'
complete -c dsync -o setup -d 'write a repository file'
complete -c dsync -o repo -x -a '(__dsync_repos)' -d 'with -setup: the repository name'
complete -c dsync -o save -r -a '(__fish_complete_directories)' -d 'with -setup: the mirror folder'
complete -c dsync -o src -x -d 'with -setup: the upstream URL'
complete -c dsync -o timeset -x -d 'with -setup: hours, e.g. 00,12'
complete -c dsync -o gendsync -d 'write the DTP manifest of every dsync=true repository'
complete -c dsync -o service -d 'start the DTP service'
complete -c dsync -o foreground -d 'with -service: stay in the foreground'
complete -c dsync -o stop-service -d 'stop the DTP service'
complete -c dsync -o reload -d 'make the DTP service re-read its files'
complete -c dsync -o startup -d 'install and enable the systemd unit of the DTP service'
complete -c dsync -o h -l help -d 'print usage'
complete -c dsync -l version -d 'print the version'
complete -c dsync -n __fish_use_subcommand -a 'ftpsync ftpsync-cron demo rsync-ssl-tunnel'
