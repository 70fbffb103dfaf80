//! fence_cloudha against an in-memory cloud: the contract's input rules, every action, and
//! that an unconfirmed stop is never reported as fenced.

use super::*;
use crate::cloud::fake::FakePower;
use crate::error::Kind;

const DMI: &str = "/nonexistent";

fn call(power: &FakePower, stdin: &str) -> Result<Answer> {
    let input = parse_stdin(&format!("cloud=aws\npower_timeout=2\n{stdin}"));
    let v = Values::validate(PARAMS, &input.raw)?;
    // The fake outlives the call: hand out a borrowed view of it.
    struct View<'a>(&'a FakePower);
    impl Power for View<'_> {
        fn is_id(&self, s: &str) -> bool {
            self.0.is_id(s)
        }
        fn state(&self, id: &str) -> Result<PowerState> {
            self.0.state(id)
        }
        fn off(&self, id: &str) -> Result<()> {
            self.0.off(id)
        }
        fn stop_is_idempotent(&self) -> bool {
            self.0.stop_is_idempotent()
        }
        fn on(&self, id: &str) -> Result<()> {
            self.0.on(id)
        }
        fn instances(&self) -> Result<Vec<Instance>> {
            self.0.instances()
        }
        fn own_id(&self) -> Option<String> {
            self.0.own_id()
        }
        fn preflight(&self, id: &str) -> Result<Vec<String>> {
            self.0.preflight(id)
        }
    }
    run(&v, std::path::Path::new(DMI), &|_, _, _| {
        Ok(Box::new(View(power)))
    })
}

fn two() -> FakePower {
    let p = FakePower::with(&[("i-1", "node1", true), ("i-2", "node2", true)]);
    p.lag.set(2);
    p
}

#[test]
fn stdin_rules_comments_last_value_wins_unknown_ignored() {
    let i =
        parse_stdin("# a comment\naction=off\n\nplug=i-1\nplug=i-2\npcmk_host_map=x:y\nnoequals\n");
    assert_eq!(i.raw.get("action").unwrap().0, "off");
    assert_eq!(i.raw.get("plug").unwrap().0, "i-2");
    assert_eq!(i.ignored, ["pcmk_host_map", "noequals"]);
}

#[test]
fn command_line_options() {
    let args: Vec<String> = [
        "-o",
        "status",
        "-n",
        "i-9",
        "--power-timeout=5",
        "--region",
        "r",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let i = parse_args(&args).unwrap();
    assert_eq!(i.raw.get("action").unwrap().0, "status");
    assert_eq!(i.raw.get("plug").unwrap().0, "i-9");
    assert_eq!(i.raw.get("power_timeout").unwrap().0, "5");
    assert_eq!(i.raw.get("region").unwrap().0, "r");
    let e = parse_args(&["--bogus".to_string()]).unwrap_err();
    assert!(e.message.contains("unknown option"), "{e}");
    assert!(
        parse_args(&["-o".to_string()]).is_err(),
        "a value is needed"
    );
}

#[test]
fn off_waits_for_stopped_and_status_says_off() {
    let p = two();
    let a = call(&p, "action=off\nplug=i-2").unwrap();
    assert_eq!(a.code, 0);
    assert_eq!(p.count("off"), 1);
    assert_eq!(call(&p, "action=status\nplug=i-2").unwrap().code, 2);
    assert_eq!(call(&p, "action=status\nplug=i-1").unwrap().code, 0);
    // Already off: nothing to do, still success.
    assert_eq!(call(&p, "action=off\nplug=i-2").unwrap().code, 0);
    assert_eq!(p.count("off"), 1);
}

#[test]
fn where_a_stop_is_idempotent_off_asks_for_it_first() {
    let p = two();
    p.idempotent_stop.set(true);
    assert_eq!(call(&p, "action=off\nplug=i-2").unwrap().code, 0);
    let calls = p.calls.borrow().clone();
    let first = calls.iter().position(|c| c.starts_with("off")).unwrap();
    assert!(
        !calls[..first].iter().any(|c| c.starts_with("state")),
        "no read before the stop: {calls:?}"
    );
    // Already off: asked again, a no-op, still success.
    assert_eq!(call(&p, "action=off\nplug=i-2").unwrap().code, 0);
    assert_eq!(p.count("off"), 2);
}

#[test]
fn a_stop_that_is_never_confirmed_is_a_failure() {
    let p = two();
    p.stuck.set(true);
    let e = call(&p, "action=off\nplug=i-2\npower_timeout=1").unwrap_err();
    assert_eq!(e.kind, Kind::Failed);
    assert!(e.message.contains("not confirmed"), "{e}");
}

#[test]
fn nodename_maps_to_the_one_instance_of_that_name() {
    let p = two();
    assert_eq!(call(&p, "action=off\nnodename=node2").unwrap().code, 0);
    assert_eq!(call(&p, "action=status\nport=i-2").unwrap().code, 2);
    // The fencer passes the node name as port when pcmk_host_map does not map it.
    assert_eq!(
        call(&p, "action=on\nport=node2\nnodename=node2")
            .unwrap()
            .code,
        0
    );
    assert_eq!(call(&p, "action=status\nplug=i-2").unwrap().code, 0);
    let e = call(&p, "action=off\nnodename=node7").unwrap_err();
    assert!(e.message.contains("no instance is named"), "{e}");
    p.instances.borrow_mut()[0].name = "node2".into();
    let e = call(&p, "action=status\nnodename=node2").unwrap_err();
    assert!(e.message.contains("2 instances are named"), "{e}");
    let e = call(&p, "action=status").unwrap_err();
    assert!(e.message.contains("set plug"), "{e}");
}

#[test]
fn never_fences_itself() {
    let mut p = two();
    p.own = Some("i-1".into());
    let e = call(&p, "action=reboot\nplug=i-1").unwrap_err();
    assert!(e.message.contains("instance this agent runs on"), "{e}");
    assert_eq!(p.count("off"), 0);
}

#[test]
fn reboot_is_off_then_on_and_succeeds_once_off() {
    let p = two();
    assert_eq!(call(&p, "action=reboot\nplug=i-2").unwrap().code, 0);
    assert_eq!((p.count("off"), p.count("on")), (1, 1));
    // The start was asked for and not waited for: the instance is still pending.
    assert!(matches!(
        p.state("i-2").unwrap(),
        PowerState::Moving(ref w) if w == "pending"
    ));
    assert_eq!(call(&p, "action=status\nplug=i-2").unwrap().code, 0);
    // The start fails: still fenced, still success.
    let q = two();
    q.refuse_start.set(true);
    assert_eq!(call(&q, "action=reboot\nplug=i-1").unwrap().code, 0);
    assert_eq!(call(&q, "action=status\nplug=i-1").unwrap().code, 2);
    assert!(call(&q, "action=on\nplug=i-1").is_err());
}

#[test]
fn list_monitor_and_cloud_errors() {
    let p = two();
    assert_eq!(
        call(&p, "action=list").unwrap().stdout,
        "i-1,node1\ni-2,node2\n"
    );
    call(&p, "action=off\nplug=i-2").unwrap();
    assert_eq!(
        call(&p, "action=list-status").unwrap().stdout,
        "i-1,node1,on\ni-2,node2,off\n"
    );
    assert_eq!(call(&p, "action=monitor").unwrap().code, 0);
    p.fault.arm(Error::permission("UnauthorizedOperation"), 1);
    assert!(call(&p, "action=monitor").is_err());
    p.fault.arm(Error::transient("RequestLimitExceeded"), 1);
    assert!(
        call(&p, "action=status\nplug=i-1").is_err(),
        "status could not tell: 1"
    );
}

#[test]
fn auto_refuses_off_aws_and_metadata_needs_no_cloud() {
    let input = parse_stdin("action=status\nplug=i-1\n");
    let v = Values::validate(PARAMS, &input.raw).unwrap();
    let e = run(&v, std::path::Path::new(DMI), &|_, _, _| unreachable!()).unwrap_err();
    assert_eq!(e.kind, Kind::NotInstalled);
    assert!(e.message.contains("fences on AWS and OCI"), "{e}");
    let input = parse_stdin("action=metadata\n");
    let v = Values::validate(PARAMS, &input.raw).unwrap();
    let a = run(&v, std::path::Path::new(DMI), &|_, _, _| unreachable!()).unwrap();
    assert!(a.stdout.contains("<resource-agent name=\"fence_cloudha\""));
}
