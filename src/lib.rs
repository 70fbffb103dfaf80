//! cloudha: cloud-aware HA resource agents in one binary, called by Pacemaker (OCF 1.1) or by
//! Oracle Clusterware (ACTION_SCRIPT). See README.md for how it is invoked.

pub mod action;
pub mod agents;
pub mod cloud;
pub mod contract;
pub mod docs;
pub mod error;
pub mod fault;
pub mod fence;
pub mod files;
pub mod host;
pub mod log;
pub use docs::metadata;
pub mod params;

use std::ffi::OsString;
use std::path::Path;

use clap::{Arg, ArgAction, Command};

use agents::{AGENTS, AgentDef};
use contract::{Caller, Env, Invocation};
use host::Host;

const ABOUT: &str = "Cloud-aware high-availability resource agents for Pacemaker (OCF 1.1) and \
                     Oracle Clusterware, in one static binary.";

/// The command-line interface, generated from the agent declarations.
pub fn cli() -> Command {
    let mut cmd = Command::new("cloudha")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .after_help(
            "Called by a cluster manager through a link named after the agent, e.g. \
             /usr/lib/ocf/resource.d/cloudha/vip -> cloudha, with the action as the only \
             argument. People can call `cloudha <agent> <action> [name=value ...]`.\n\
             Exit codes follow OCF 1.1, or Oracle Clusterware's when _CRS_NAME is set.",
        );
    for a in AGENTS {
        cmd = cmd.subcommand(agent_command(a));
    }
    cmd
}

/// An agent's subcommand (also what `<link> --help` prints); its long help is the agent's long
/// description, one wrapped paragraph after another.
pub fn agent_command(a: &AgentDef) -> Command {
    Command::new(a.name)
        .about(a.shortdesc)
        .long_about(docs::wrap_paragraphs(a.longdesc, 80))
        .override_usage(format!("cloudha {} <ACTION> [name=value ...]", a.name))
        .after_help(metadata::params_help(a))
        .arg(Arg::new("action").help(action::cli_help()).required(true))
        .arg(
            Arg::new("params")
                .help("parameters as name=value; they override the environment")
                .num_args(0..)
                .action(ArgAction::Append),
        )
}

fn real_host(deadline: std::time::Instant) -> error::Result<Box<dyn Host>> {
    Ok(Box::new(host::netlink::NetlinkHost::new(deadline)?))
}

/// Run one call and return the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let env = Env::from_process();
    let argv0 = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or(a.as_os_str())
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    if argv0 == fence::NAME {
        return fence_main(&args[1..], &env);
    }
    // Called through a link named after an agent: argv[1] is the action, the rest is ignored.
    if let Some(agent) = agents::find(&argv0) {
        let word = args.get(1).map(|a| a.to_string_lossy().into_owned());
        return match word.as_deref() {
            Some("-h" | "--help" | "help" | "usage") => {
                let _ = agent_command(agent).bin_name(&argv0).print_long_help();
                0
            }
            Some("--version") => {
                println!("cloudha {}", env!("CARGO_PKG_VERSION"));
                0
            }
            Some(action) => dispatch(agent, action, &env, &[], None),
            None => usage_error(&env, &format!("no action given; usage: {argv0} <action>")),
        };
    }
    match cli().try_get_matches_from(&args) {
        Ok(m) => match m.subcommand() {
            Some((name, sub)) => {
                let agent = agents::find(name).expect("subcommands come from AGENTS");
                let action = sub.get_one::<String>("action").expect("required");
                let mut cli_params = Vec::new();
                for word in sub.get_many::<String>("params").into_iter().flatten() {
                    match word.split_once('=') {
                        Some((k, v)) => cli_params.push((k.to_string(), v.to_string())),
                        None => {
                            return usage_error(
                                &env,
                                &format!("expected name=value, found {}", error::shown(word)),
                            );
                        }
                    }
                }
                // `cloudha vip check ...` is the pre-flight for people: validate-all at
                // depth 10. Under Clusterware, check stays its monitor.
                if action == action::PREFLIGHT_WORD && Caller::detect(&env) == Caller::Ocf {
                    return dispatch(agent, "validate-all", &env, &cli_params, Some(10));
                }
                dispatch(agent, action, &env, &cli_params, None)
            }
            None => {
                let _ = cli().print_help();
                2
            }
        },
        Err(e) => {
            use clap::error::ErrorKind as K;
            match e.kind() {
                K::DisplayHelp | K::DisplayVersion => {
                    let _ = e.print();
                    0
                }
                K::InvalidSubcommand | K::UnknownArgument if args.len() > 1 => {
                    let _ = e.print();
                    let known: Vec<&str> = AGENTS.iter().map(|a| a.name).collect();
                    usage_error_code(
                        &env,
                        &format!("unknown agent or option (agents: {})", known.join(", ")),
                        5,
                    )
                }
                _ => {
                    let _ = e.print();
                    2
                }
            }
        }
    }
}

/// Run one action; `check_level` overrides the caller's depth (the pre-flight for people).
fn dispatch(
    agent: &'static AgentDef,
    action: &str,
    env: &Env,
    cli_params: &[(String, String)],
    check_level: Option<u32>,
) -> i32 {
    match Invocation::new(agent, action, env, cli_params) {
        Ok(mut inv) => {
            if let Some(level) = check_level {
                inv.check_level = level;
            }
            let who = log::Who {
                agent: agent.name,
                resource: &inv.resource,
                caller: inv.caller,
                action: Some(action),
            };
            log::init(env, who);
            let began = std::time::Instant::now();
            let code = contract::execute(&inv, &real_host);
            tracing::debug!(
                "{} ends with exit code {code} after {:.2} s",
                error::shown(action),
                began.elapsed().as_secs_f64()
            );
            code
        }
        Err((caller, e)) => {
            let who = log::Who {
                agent: agent.name,
                resource: agent.name,
                caller,
                action: Some(action),
            };
            log::init(env, who);
            contract::refusal(caller, &e.message, contract::ocf_code(e.kind)).emit()
        }
    }
}

/// fence_cloudha: options from the command line, or from stdin when there are none (the
/// fencer's way); exit 0 done, 1 failed, 2 for status "off".
fn fence_main(args: &[OsString], env: &Env) -> i32 {
    use std::io::Read as _;
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let input = if args.is_empty() {
        let mut bytes = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut bytes);
        Ok(fence::parse_stdin(&String::from_utf8_lossy(&bytes)))
    } else {
        fence::parse_args(&args)
    };
    let who = log::Who {
        agent: fence::NAME,
        resource: fence::NAME,
        caller: Caller::Ocf,
        action: None,
    };
    log::init(env, who);
    let input = match input {
        Ok(i) => i,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    if input.help {
        print!("{}", fence::help());
        return 0;
    }
    if input.version {
        println!("{} {}", fence::NAME, env!("CARGO_PKG_VERSION"));
        return 0;
    }
    for name in &input.ignored {
        tracing::debug!("ignoring option {}", error::shown(name));
    }
    let paths = contract::paths(env);
    let real = |kind, opts: &cloud::Options, deadline| {
        cloud::power_provider(kind, opts, &paths.run_dir, deadline)
    };
    let answer = params::Values::validate(fence::PARAMS, &input.raw)
        .and_then(|v| fence::run(&v, &paths.dmi_dir, &real));
    match answer {
        Ok(a) => {
            print!("{}", a.stdout);
            a.code
        }
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

fn usage_error(env: &Env, msg: &str) -> i32 {
    usage_error_code(env, msg, 2)
}

fn usage_error_code(env: &Env, msg: &str, ocf: i32) -> i32 {
    contract::refusal(Caller::detect(env), msg, ocf).emit()
}
