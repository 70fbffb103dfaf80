//! Shell completions. clap_complete generates the CLI part from `cloudha::cli()` (the agents,
//! their actions, --help and --version); what its static generators cannot do is added here,
//! from one table of words: the name=value parameter words after the action (bash splits words
//! at `=` and fish's generator knows no positional arguments, so both get a few lines of glue;
//! zsh's `_arguments` takes them as possible values) and the agents' links, whose only
//! argument is the action.

use clap::Command;
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap_complete::{Shell, generate};

use cloudha::agents::{AGENTS, AgentDef};
use cloudha::docs::{OCF_DIR, VERSION};
use cloudha::params::{Param, Type};

/// The actions a person may type for an agent.
fn actions(a: &AgentDef) -> Vec<&'static str> {
    cloudha::action::typed_words(a.has_reloadable())
}

/// The values a parameter takes, when they are a fixed set.
fn values(p: &Param) -> Option<Vec<&'static str>> {
    match p.ty {
        Type::Select(o) => Some(o.to_vec()),
        Type::Boolean => Some(vec!["true", "false"]),
        _ => None,
    }
}

/// The whole words of a parameter: `cloud=aws`, ...; `ip=` for a free value.
fn param_words(p: &Param) -> Vec<String> {
    match values(p) {
        Some(v) => v.iter().map(|v| format!("{}={v}", p.name)).collect(),
        None => vec![format!("{}=", p.name)],
    }
}

/// `cloudha::cli()` with the actions (and, for zsh, the parameter words) as possible values:
/// completion only, the binary's parser still takes any word and answers for it.
fn cli(with_params: bool) -> Command {
    let mut cmd = cloudha::cli();
    for a in AGENTS {
        cmd = cmd.mut_subcommand(a.name, |c| {
            // mut_arg re-adds the argument last: keep the positions explicit.
            let c = c.mut_arg("action", |arg| {
                arg.value_parser(PossibleValuesParser::new(actions(a)))
                    .index(1)
            });
            if !with_params {
                return c.mut_arg("params", |arg| arg.index(2));
            }
            let words = a.params.iter().flat_map(|p| {
                param_words(p)
                    .into_iter()
                    // clap takes 'static names (without its `string` feature, which the
                    // binary does not need); this program runs once.
                    .map(|w| PossibleValue::new(&*w.leak()).help(p.shortdesc))
            });
            c.mut_arg("params", |arg| {
                arg.value_parser(PossibleValuesParser::new(words)).index(2)
            })
        });
    }
    cmd
}

fn clap_part(shell: Shell, with_params: bool) -> String {
    let mut buf = Vec::new();
    generate(shell, &mut cli(with_params), "cloudha", &mut buf);
    String::from_utf8(buf).expect("UTF-8")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn header(shell: &str) -> String {
    format!(
        "# {shell} completion for cloudha {VERSION}: clap_complete's, then the name=value words \
         and the agents' links (generated from the agent declarations by examples/gendoc)\n"
    )
}

pub fn bash() -> String {
    let mut w = header("bash");
    w.push_str(&clap_part(Shell::Bash, false));
    w.push_str("\n_cloudha_words() {\n    case \"$1:$2\" in\n");
    for a in AGENTS {
        let mut cases = vec![
            ("actions".to_string(), actions(a).join(" ")),
            (
                "params".to_string(),
                a.params
                    .iter()
                    .map(|p| format!("{}=", p.name))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ];
        cases.extend(
            a.params
                .iter()
                .filter_map(|p| Some((p.name.to_string(), values(p)?.join(" ")))),
        );
        for (key, words) in cases {
            w.push_str(&format!(
                "    {}:{key}) echo {} ;;\n",
                a.name,
                quote(&words)
            ));
        }
    }
    w.push_str(
        r#"    esac
}

# After the action: name=value words ($1: the agent). Bash splits "cloud=aws" into three words.
_cloudha_params() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    if [[ $cur == = ]]; then
        COMPREPLY=($(compgen -W "$(_cloudha_words "$1" "$prev")"))
    elif [[ $prev == = ]]; then
        COMPREPLY=($(compgen -W "$(_cloudha_words "$1" "${COMP_WORDS[COMP_CWORD-2]}")" -- "$cur"))
    else
        compopt -o nospace 2>/dev/null
        COMPREPLY=($(compgen -W "$(_cloudha_words "$1" params)" -- "$cur"))
    fi
}

_cloudha_with_params() {
    if (( COMP_CWORD >= 3 )) && [[ ${COMP_WORDS[1]} != -* ]]; then
        COMPREPLY=()
        _cloudha_params "${COMP_WORDS[1]}"
    else
        _cloudha "$@"
    fi
}
complete -F _cloudha_with_params cloudha

# Through an agent's link the action is the only argument.
_cloudha_agent() {
    COMPREPLY=()
    if (( COMP_CWORD == 1 )); then
        COMPREPLY=($(compgen -W "$(_cloudha_words "${COMP_WORDS[0]##*/}" actions)" -- "${COMP_WORDS[1]}"))
    fi
}
"#,
    );
    for a in AGENTS {
        w.push_str(&format!(
            "complete -F _cloudha_agent {OCF_DIR}/{}\n",
            a.name
        ));
    }
    w
}

pub fn zsh() -> String {
    // `#compdef` must stay the first line.
    let clap = clap_part(Shell::Zsh, true);
    let (first, rest) = clap.split_once('\n').expect("a #compdef line");
    format!("{first}\n{}{rest}", header("zsh"))
}

pub fn fish() -> String {
    let mut w = header("fish");
    w.push_str(&clap_part(Shell::Fish, false));
    w.push_str("\n# Actions and name=value words after the agent; no file names.\ncomplete -c cloudha -f\n");
    for a in AGENTS {
        let seen = format!("__fish_seen_subcommand_from {}", a.name);
        let count = "test (count (commandline -opc))";
        let acts = quote(&actions(a).join(" "));
        w.push_str(&format!(
            "complete -c cloudha -n {} -a {acts}\n",
            quote(&format!("{seen}; and {count} -eq 2"))
        ));
        for p in a.params {
            w.push_str(&format!(
                "complete -c cloudha -n {} -a {} -d {}\n",
                quote(&format!("{seen}; and {count} -ge 3")),
                quote(&param_words(p).join(" ")),
                quote(p.shortdesc)
            ));
        }
        let link = format!("{OCF_DIR}/{}", a.name);
        w.push_str(&format!(
            "complete -p {link} -f\ncomplete -p {link} -n {} -a {acts}\n",
            quote(&format!("{count} -eq 1"))
        ));
    }
    w
}
