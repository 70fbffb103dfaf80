"""A faithful local EC2 for the lab tests and benchmarks: moto with fidelity fixes, an IAM
stand-in, a call log, fault injection, IMDSv2 per node, and a VPC data plane in namespaces.

Nothing leaves the machine: the API listens on 127.0.0.1 only; 169.254.169.254 exists only on
``lo`` inside node namespaces; nodes, fabric and client namespaces have no link to the host;
their resolv.conf says ``nameserver 127.0.0.1``; host-side boto3 clients get
``AWS_EC2_METADATA_DISABLED=true`` and an explicit endpoint. Every process is started here and
stopped by its PID.

Pieces (``python3 -m ec2lab.server``, one process per lab, stopped by PID; it also exits when
the process that started it is gone)::

    agents (host, or node ns via the relay on 127.0.0.1:PORT)
      -> endpoint 127.0.0.1:PORT: faults -> call log -> IAM/DryRun -> moto + fidelity fixes
    lab bookkeeping -> control 127.0.0.1:CPORT: /_lab/... and moto directly (not counted,
                       no faults, no IAM; DryRun still honoured)
    node ns: IMDSv2 on 169.254.169.254:80 (live moto state), relay 127.0.0.1:PORT -> host
    fabric ns (the VPC router): one veth per ENI, proxy_arp, a /32 per private IP of every
      ENI (+ permanent neighbour = the ENI's MAC), blackhole for IPs no ENI holds any more and
      for the rest of the VPC CIDR; mirrored from moto every 50 ms and after each mutation
    client ns: another subnet, routed through the fabric (VPC CIDR + default via its router)
    fabric ns, route tables: one kernel table per VPC route table with its routes to lab ENIs
      (via the ENI's primary IP; blackhole when the route is blackhole, targets no lab ENI, or
      the ENI's source/dest check is on), ``ip rule from <subnet>`` -> the subnet's table
      (explicit association, else main): a client reaches an overlay IP only through its own
      subnet's table. Mirrored like the private IPs, without lag.

Addresses (defaults): VPC 10.0.0.0/16; node subnet 10.0.1.0/24 (router .1 in the fabric),
node i's primary ENI 10.0.1.(10+i) on eth0, its optional second ENI 10.0.1.(30+i) on eth1
(same subnet, device index 1); client subnet 10.0.2.0/24, client 10.0.2.10. Elastic IPs come
from 198.51.100.0/24. Account 123456789012. Node i's access key is ``AKIALABNODE<i>`` (IMDS
role credentials and the awsvip profile), so the call log and the deny list tell nodes apart;
the lab's own key is ``lab``.

API (everything else is private)::

    from ec2lab import Ec2Lab
    with Ec2Lab(nodes=2, name="aws", region="eu-west-1",
                pacemaker=False,      # True: a real pcmk.Lab cluster on the fabric (lab.cluster)
                agents=("vip",), binary=None,   # passed to pcmk.Lab (binary: $CLOUDHA_BIN)
                second_eni=False,     # True (every node) or [node numbers]: eth1 = 2nd ENI
                client=True, vpc_cidr="10.0.0.0/16", subnet_cidr="10.0.1.0/24",
                client_cidr="10.0.2.0/24",
                dataplane_lag=0.0, imds_lag=0.0) as lab:   # everything provisioned and wired
        lab.endpoint          # "http://127.0.0.1:PORT" (faults+IAM+log); same URL inside nodes
        lab.port, lab.control_url
        lab.region, lab.az, lab.vpc_id, lab.vpc_cidr, lab.subnet_id, lab.subnet_cidr,
        lab.client_subnet_id, lab.client_cidr, lab.router, lab.prefixlen, lab.fabric (ns name)
        lab.up_seconds, lab.down_seconds, lab.dir (scratch: server.log, aws, aws-<node>/)
        lab.ec2               # boto3 EC2 client straight to moto as "lab" (not counted)
        lab.client_for(service="ec2", key="lab", url=None)   # more boto3 clients; with
                              # url=lab.endpoint and key=node.key it is an agent-like caller
        n = lab.nodes[0]      # Node; lab.node(2) / lab.node("node2")
        n.name ("node1"), n.ns (netns name; "pid:<PID>" in the Pacemaker form), n.ns_path,
        n.instance_id, n.eni_id, n.mac, n.ip, n.ifname ("eth0"), n.key,
        n.enis                # [Eni(.id, .mac, .ip, .device, .ifname)] device order
        n.machine             # the pcmk.Machine (Pacemaker form) or None
        n.exec(argv, env=None, timeout=60, check=False, input=None) -> CompletedProcess (text)
        n.popen(argv, env=None, **popen_kw) -> Popen          # killed by PID at close
                              # env=None: the host's env minus AWS_*, OCF_*, HA_*, proxies
                              # (the test process has AWS_EC2_METADATA_DISABLED=true, set by
                              # client_for; a node must not inherit it)
        n.iproute(*args)      # `ip ARGS` in the node, raises on failure
        n.serve_name(port)    # TCP 0.0.0.0:port answers the node's name; returns listening
        n.poll(ip, port, every=0.05, timeout=0.2) -> pcmk.Poller (.stop(), .results())
        lab.client            # Host (same exec/popen/poll/who_answers), or None (client=False)
        lab.client.poll(ip, port, every=0.05) -> Poller; results() -> [(monotonic, name|None)]
        lab.who_answers(ip, port, timeout=0.5) -> node name | None      # from the client

        # state, host-side truth (not counted)
        lab.owners(ip) -> sorted ENI ids holding ip
        lab.assign(ip, node, eni=None, wait=True)    # AllowReassignment (moves); wait: data
        lab.unassign(ip, node, eni=None, wait=True)  #   plane mirrors it before returning
        lab.sync()                                   # wait for the data plane to catch up
        lab.set_dataplane_lag(seconds)               # routes = the state of `seconds` ago
        lab.allocate_eip() -> (allocation_id, public_ip)
        # route tables (overlay IPs; the client has a default route via its subnet's router)
        lab.main_route_table                          # the VPC's main table (rtb id)
        lab.create_route_table(subnets=(), vpc_id=None) -> rtb id   # associated with subnets
        lab.set_route(table, dest, node=None, eni=None, wait=True)  # create/replace to the
                                              #   ENI; no node/eni: delete
        lab.route_target(table, dest) -> (ENI id | other target id, state) | None
        lab.set_source_dest_check(node, on, eni=None); lab.source_dest_check(node) -> bool
        lab.eip_target(allocation_id) -> (eni_id, private_ip) | None

        # call log of the endpoint (the lab's own calls excluded)
        lab.calls(since=None) -> [{t (time.monotonic()), action, key, service ("ec2"|"sts"),
                                   status (HTTP; None = reset), dry_run, fault, duration}]
        lab.count(action=None, since=None, key=None) -> int

        # faults (endpoint only; also through the relay; a reset stays a reset there)
        lab.faults.set(kind, count=None, actions=None, delay=None, keys=None)  # replaces
        lab.faults.add(...)    # one more rule;  lab.faults.clear()
            # kind: "throttle" 503 RequestLimitExceeded | "http500" 500 InternalError |
            # "reset" TCP RST, no answer | "slow" sleep `delay` s, then answer normally;
            # count None = until cleared; actions/keys None = all (STS: Throttling/InternalFailure)

        # IAM stand-in (callers = access key of the SigV4 Authorization header)
        lab.iam.deny(*actions, key=None)   # "AssignPrivateIpAddresses", "ec2:...", "sts:...",
                                           # "*"; key=None: everyone. 403 UnauthorizedOperation
                                           # ("You are not authorized to perform this
                                           # operation."), STS: AccessDenied
        lab.iam.allow_all()
            # DryRun=true on an EC2 action that has DryRun (botocore's model): 412
            # DryRunOperation if allowed, 403 UnauthorizedOperation if denied; nothing changes.
            # Assign/UnassignPrivateIpAddresses have no DryRun in EC2: passed to moto.

        # IMDSv2 (HttpTokens=required) on 169.254.169.254:80 in every node
        lab.imds.expire_tokens()              # all tokens issued so far -> 401
        lab.imds.requests(node, since=None) -> [{t, method, path, status}]
        lab.imds.count(node, path=None, method=None, since=None) -> int
        lab.imds.set_lag(seconds)             # local-ipv4s shows the state of `seconds` ago

        # peers (ClusterLabs resource-agents)
        lab.aws_env(node) -> env for `aws` inside node (credentials/config files of the node,
                             AWS_ENDPOINT_URL; no AWS_EC2_METADATA_DISABLED: IMDS answers)
        lab.awsvip_env(node, ip, **params) -> env to run
            /usr/lib/ocf/resource.d/heartbeat/awsvip <action> with node.exec: OCF_RESKEY_awscli
            = lab.dir/aws (adds --endpoint-url), profile "default" = the node's key,
            secondary_private_ip = ip, params as OCF_RESKEY_* (e.g. api_delay=0)

        lab.cluster           # pcmk.Lab (Pacemaker form) or None
        lab.close()           # also __exit__; safe twice
    sweep_leftovers()         # namespaces, /etc/netns/<ns>, scratch of dead owners (by start)

IMDS paths (under /latest/): PUT api/token (X-aws-ec2-metadata-token-ttl-seconds 1..21600,
else 400; X-Forwarded-For -> 403); GET needs X-aws-ec2-metadata-token valid for this node and
unexpired (else 401): meta-data/ (listing), instance-id, instance-type, ami-id, mac (primary
ENI), local-ipv4, hostname, local-hostname, placement/{region,availability-zone},
services/{domain,partition}, network/interfaces/macs/ ("<mac>/" per attached ENI),
network/interfaces/macs/<mac>/{interface-id, local-ipv4s (primary first), mac, device-number,
owner-id, subnet-id, subnet-ipv4-cidr-block, vpc-id, vpc-ipv4-cidr-block(s),
security-group-ids}, iam/info, iam/security-credentials/ (role name),
iam/security-credentials/<role> (AccessKeyId = node.key, Expiration in 6 h),
dynamic/instance-identity/document (JSON). Unknown paths: 404.

Fidelity fixes (ec2lab/fidelity.py; each proven against plain moto in test_ec2lab.py):
AssignPrivateIpAddresses with AllowReassignment moves the IP; without it an IP held elsewhere
-> InvalidParameterValue; IP outside the subnet or reserved -> InvalidParameterValue; a primary
never moves; the response lists only the assigned IPs. UnassignPrivateIpAddresses refuses an
IP not on the ENI and the primary. DescribeNetworkInterfaces filters addresses.private-ip-address
(secondaries too), attachment.device-index, attachment.status, mac-address. EIPs from
198.51.100.0/24; unassociated EIPs omit InstanceId; an ENI association shows the instance;
AssociateAddress refuses a move without AllowReassociation (Resource.AlreadyAssociated), takes
AllowReassociation=false as false, honours PrivateIpAddress, clears the old ENI. Routes show
InstanceId and NetworkInterfaceId; CreateRoute on an existing destination -> RouteAlreadyExists;
DryRun honoured everywhere (the gate); state blackhole when the ENI is gone/detached or the
instance not running.

The Pacemaker form: ``pcmk.Lab(network=lab)`` (see pcmk.py "Another network"): node i's
machine gets eth0 (+eth1) with its ENIs' MACs/IPs on the fabric, 169.254.169.254 on lo, a
sysfs of its own namespace on /sys, resolv.conf pinned to loopback, IMDS + relay; Corosync runs
node -> fabric -> node. ``n.exec`` enters the machine's network, mount and UTS namespaces.
When a machine's PID 1 dies (``lab.cluster.crash``) the server closes its IMDS and relay so
its namespace, addresses and veths vanish like a crashed instance's. serve_name/poll use the
machine's own (they die with it).
"""

from .lab import Ec2Lab, Eni, Host, Node, sweep_leftovers  # noqa: F401
