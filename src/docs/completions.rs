//! Shell completions (bash, zsh, fish) for `cloudha`, from the agents and their parameters.

use std::fmt::Write as _;

use super::{OCF_DIR, VERSION};
use crate::agents::{AGENTS, AgentDef};
use crate::params::Type;

/// Actions a person may type for an agent.
fn actions(a: &AgentDef) -> Vec<&'static str> {
    crate::action::typed_words(a.has_reloadable())
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub fn bash() -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "# bash completion for cloudha {VERSION} (generated from the agent declarations)\n"
    );
    let _ = writeln!(w, "_cloudha_words() {{\n    case \"$1:$2\" in");
    for a in AGENTS {
        let _ = writeln!(
            w,
            "    {}:actions) echo {} ;;",
            a.name,
            sh_quote(&actions(a).join(" "))
        );
        let names: Vec<String> = a.params.iter().map(|p| format!("{}=", p.name)).collect();
        let _ = writeln!(
            w,
            "    {}:params) echo {} ;;",
            a.name,
            sh_quote(&names.join(" "))
        );
        for p in a.params {
            let values = match p.ty {
                Type::Select(o) => o.join(" "),
                Type::Boolean => "true false".into(),
                _ => continue,
            };
            let _ = writeln!(
                w,
                "    {}:{}) echo {} ;;",
                a.name,
                p.name,
                sh_quote(&values)
            );
        }
    }
    let _ = writeln!(w, "    esac\n}}\n");
    let names: Vec<&str> = AGENTS.iter().map(|a| a.name).collect();
    let _ = write!(
        w,
        r#"# Complete the words after the agent: the action, then name=value parameters.
# $1: the agent; $2: index in COMP_WORDS of the action.
_cloudha_after_agent() {{
    local agent=$1 first=$2 cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    if [ "$COMP_CWORD" -eq "$first" ]; then
        COMPREPLY=($(compgen -W "$(_cloudha_words "$agent" actions)" -- "$cur"))
    elif [ "$cur" = "=" ]; then
        COMPREPLY=($(compgen -W "$(_cloudha_words "$agent" "$prev")"))
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 2 ]; then
        COMPREPLY=($(compgen -W "$(_cloudha_words "$agent" "${{COMP_WORDS[COMP_CWORD-2]}}")" -- "$cur"))
    else
        compopt -o nospace 2>/dev/null
        COMPREPLY=($(compgen -W "$(_cloudha_words "$agent" params)" -- "$cur"))
    fi
}}

_cloudha() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{agents} --help --version" -- "$cur"))
    else
        _cloudha_after_agent "${{COMP_WORDS[1]}}" 2
    fi
}}

# Through an agent's link the action is the only argument (the rest is ignored).
_cloudha_agent() {{
    if [ "$COMP_CWORD" -eq 1 ]; then
        _cloudha_after_agent "${{COMP_WORDS[0]##*/}}" 1
    fi
}}

complete -F _cloudha cloudha
"#,
        agents = names.join(" ")
    );
    for a in AGENTS {
        let _ = writeln!(w, "complete -F _cloudha_agent {OCF_DIR}/{}", a.name);
    }
    w
}

/// Escape a description for zsh's `_values`/`_describe` specs.
fn zsh_desc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:")
}

pub fn zsh() -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "#compdef cloudha\n# zsh completion for cloudha {VERSION} (generated from the agent declarations)\n"
    );
    let _ = writeln!(
        w,
        "_cloudha_agent_args() {{\n    # $1: the agent; the action is word $2 of $words; $3: whether name=value words follow.\n    local agent=$1 first=$2 params=$3\n    case $agent in"
    );
    for a in AGENTS {
        let _ = writeln!(w, "    {})", a.name);
        let acts: Vec<String> = actions(a).iter().map(|s| s.to_string()).collect();
        let _ = writeln!(
            w,
            "        if (( CURRENT == first )); then\n            _values 'action' {}\n            return\n        fi\n        [[ $params == yes ]] || return 1",
            acts.iter()
                .map(|s| sh_quote(s))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let specs: Vec<String> = a
            .params
            .iter()
            .map(|p| {
                let values = match p.ty {
                    Type::Select(o) => format!("({})", o.join(" ")),
                    Type::Boolean => "(true false)".into(),
                    _ => String::new(),
                };
                format!(
                    "'{}[{}]:{}:{}'",
                    p.name,
                    zsh_desc(p.shortdesc),
                    p.ty.ocf_name(),
                    values
                )
            })
            .collect();
        let _ = writeln!(
            w,
            "        _values -w 'parameter' \\\n            {}\n        ;;",
            specs.join(" \\\n            ")
        );
    }
    let _ = writeln!(w, "    esac\n}}\n");
    let descs: Vec<String> = AGENTS
        .iter()
        .map(|a| format!("'{}:{}'", a.name, zsh_desc(a.shortdesc)))
        .collect();
    let _ = write!(
        w,
        r#"_cloudha() {{
    local -a agents
    agents=({descs})
    case $service in
    cloudha)
        if (( CURRENT == 2 )); then
            _describe 'agent' agents
        else
            _cloudha_agent_args $words[2] 3 yes
        fi
        ;;
    *)
        # Through an agent's link the action is the only argument.
        _cloudha_agent_args ${{service:t}} 2 no
        ;;
    esac
}}

_cloudha "$@"
"#,
        descs = descs.join(" ")
    );
    // The first line names the commands this function completes.
    let links: Vec<String> = AGENTS
        .iter()
        .map(|a| format!("{OCF_DIR}/{}", a.name))
        .collect();
    w.replacen(
        "#compdef cloudha",
        &format!("#compdef cloudha {}", links.join(" ")),
        1,
    )
}

pub fn fish() -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "# fish completion for cloudha {VERSION} (generated from the agent declarations)\n"
    );
    let _ = writeln!(w, "complete -c cloudha -f");
    let _ = writeln!(
        w,
        "complete -c cloudha -n '__fish_use_subcommand' -l help -d 'Print help'"
    );
    let _ = writeln!(
        w,
        "complete -c cloudha -n '__fish_use_subcommand' -l version -d 'Print version'"
    );
    for a in AGENTS {
        let _ = writeln!(
            w,
            "complete -c cloudha -n '__fish_use_subcommand' -a {} -d {}",
            a.name,
            sh_quote(a.shortdesc)
        );
        let link = format!("{OCF_DIR}/{}", a.name);
        // (command, condition for the action word, condition for the parameters)
        let targets = [
            (
                "cloudha".to_string(),
                format!(
                    "__fish_seen_subcommand_from {}; and test (count (commandline -opc)) -eq 2",
                    a.name
                ),
                format!(
                    "__fish_seen_subcommand_from {}; and test (count (commandline -opc)) -ge 3",
                    a.name
                ),
            ),
            (
                link.clone(),
                "test (count (commandline -opc)) -eq 1".to_string(),
                "test (count (commandline -opc)) -ge 2".to_string(),
            ),
        ];
        for (cmd, act_cond, param_cond) in &targets {
            let through_link = *cmd != "cloudha";
            if through_link {
                let _ = writeln!(w, "complete -c {cmd} -f");
            }
            let _ = writeln!(
                w,
                "complete -c {cmd} -n {} -a {}",
                sh_quote(act_cond),
                sh_quote(&actions(a).join(" "))
            );
            // Through an agent's link the action is the only argument.
            if through_link {
                continue;
            }
            for p in a.params {
                let words = match p.ty {
                    Type::Select(o) => o.iter().map(|v| format!("{}={v}", p.name)).collect(),
                    Type::Boolean => vec![format!("{}=true", p.name), format!("{}=false", p.name)],
                    _ => vec![format!("{}=", p.name)],
                };
                let _ = writeln!(
                    w,
                    "complete -c {cmd} -n {} -a {} -d {}",
                    sh_quote(param_cond),
                    sh_quote(&words.join(" ")),
                    sh_quote(p.shortdesc)
                );
            }
        }
    }
    w
}
