//! The parameters every cloud-facing agent shares, declared once: each agent includes the keys
//! it takes in its own `PARAMS`, and [`Options::from_values`](super::Options::from_values)
//! reads them back typed. A new shared parameter is one declaration here.

use std::time::Duration;

use crate::params::{Key, Param, Type};

crate::choice! {
    /// How the cloud is chosen (`cloud=`).
    pub enum CloudChoice {
        /// Recognise the cloud from DMI data.
        #[default]
        Auto = "auto",
        /// A plain L2 network.
        None = "none",
        Aws = "aws",
        Oci = "oci",
    }
}

impl CloudChoice {
    /// The cloud chosen by name; `None` for auto, which DMI data decides at the action.
    pub fn kind(self) -> Option<super::CloudKind> {
        use super::CloudKind;
        match self {
            CloudChoice::Auto => None,
            CloudChoice::None => Some(CloudKind::None),
            CloudChoice::Aws => Some(CloudKind::Aws),
            CloudChoice::Oci => Some(CloudKind::Oci),
        }
    }
}

crate::choice! {
    /// How OCI calls are authenticated (`oci_auth=`).
    pub enum OciAuth {
        #[default]
        InstancePrincipal = "instance_principal",
        ApiKey = "api_key",
    }
}

pub const REGION: Key<Option<String>> = Key::new(Param::new(
    "region",
    "Cloud region",
    "The region of the cloud API (aws: us-east-1; oci: us-ashburn-1). Default: AWS_REGION \
     (aws) or the config file's region (oci api_key), then the instance's own region from \
     instance metadata.",
));

pub const PROFILE: Key<Option<String>> = Key::new(Param::new(
    "profile",
    "Profile of the cloud config file",
    "aws: a profile of the AWS config and credentials files; default: the standard \
     credential chain (environment, profile, instance role). oci: a profile of the OCI \
     config file (oci_auth=api_key); default DEFAULT. Pacemaker may run agents without \
     HOME: the files are then looked for in the home directory of the user the agent runs \
     as (/root/.aws, /root/.oci), unless AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE or \
     config_file say otherwise.",
));

pub const ROLE_ARN: Key<Option<String>> = Key::new(Param::new(
    "role_arn",
    "IAM role to assume (aws)",
    "Assume this role (STS AssumeRole) with the node's credentials and make every EC2 call \
     with it, e.g. a role of another account that owns a shared VPC, or one allowed to make \
     the changes while the instance role stays minimal. The assumed credentials are kept \
     under /run/cloudha (mode 0600, like the IMDS token) and reused by later actions until \
     five minutes before they expire, so one STS call serves many monitors and moves; kept \
     credentials that EC2 refuses are dropped and the role assumed again.",
));

pub const ENDPOINT_URL: Key<Option<String>> = Key::new(Param::new(
    "endpoint_url",
    "Cloud API endpoint URL",
    "Send the cloud API calls to this URL instead of the regional endpoint. aws: the EC2 \
     calls only (e.g. a VPC interface endpoint, \
     https://vpce-....ec2.eu-west-1.vpce.amazonaws.com); STS (role_arn) keeps its regional \
     endpoint; when unset, the SDK's AWS_ENDPOINT_URL_EC2 or AWS_ENDPOINT_URL (which moves \
     STS too) in the agent's environment are honoured. oci: the core services endpoint \
     (default https://iaas.<region>.oraclecloud.com; the federation endpoint is \
     auth_endpoint_url). Both: http:// is accepted (a local test endpoint), and proxy \
     applies to the URL unless no_proxy lists its host.",
));

/// Whether the agent owns the OS address (vip, route-table: the same name and meaning).
pub const LOCAL_ADDRESS: Key<bool> = Key::new(
    Param::new(
        "local_address",
        "Configure the address locally",
        "Configure ip on nic at start (removed at stop), so this node answers for the address \
         the cloud delivers to it. false: something else owns the OS address (Oracle \
         Clusterware's ora.<node>.vip or a SCAN VIP, another resource); the resource then only \
         moves the address in the cloud, never adds or removes it on the OS, its local state \
         is a marker under /run/cloudha, and monitor judges by the cloud.",
    )
    .ty(Type::Boolean)
    .default("true"),
);

/// With local_address=false, whether the owner's OS address is part of "running here".
pub const EXPECT_LOCAL_ADDRESS: Key<bool> = Key::new(
    Param::new(
        "expect_local_address",
        "Count the owner's OS address (local_address=false)",
        "Only with local_address=false: the resource counts as running here only while ip is \
         also configured on this node (by its owner, e.g. Oracle's ora.<node>.vip); when the \
         owner has taken it away, monitor says not running (Clusterware check: \
         UNPLANNED_OFFLINE) even though the cloud still delivers it here. Start and stop still \
         never touch the OS address.",
    )
    .ty(Type::Boolean)
    .default("false"),
);

pub const CLOUD_CHECK_INTERVAL: Key<Duration> = Key::new(
    Param::new(
        "cloud_check_interval",
        "Seconds between cloud checks",
        "A recurring monitor at depth 0 looks only at this node and makes no cloud API call, \
         except once this many seconds have passed since the last good check (remembered \
         under /run/cloudha). Probes and OCF_CHECK_LEVEL >= 10 always ask the cloud. 0 asks \
         the cloud on every monitor. What the cloud's answer means for the resource is in the \
         agent's description; throttling, 5xx answers and timeouts are logged and leave a \
         healthy resource running; refused credentials or permissions report it degraded \
         (190) with the reason.",
    )
    .ty(Type::Integer {
        min: 0,
        max: 86_400,
    })
    .default("60"),
);

pub const EIP_ALLOCATION_ID: Key<Option<String>> = Key::new(Param::new(
    "eip_allocation_id",
    "Elastic IP allocation id (aws)",
    "Also associate this Elastic IP (eipalloc-...) with ip on this node's ENI at start \
     (allowing reassociation), so the public address follows; stop disassociates it only \
     when it still points at this node.",
));

pub const OCI_AUTH: Key<OciAuth> = Key::new(
    Param::new(
        "oci_auth",
        "OCI authentication",
        "instance_principal: the instance's own identity (certificate from instance metadata, \
         exchanged for a session token that is kept in /run/cloudha and renewed before it \
         expires; needs a dynamic group and a policy such as: allow dynamic-group <nodes> to \
         use virtual-network-family in compartment <compartment>). api_key: a user's API key \
         from the OCI config file (config_file, profile).",
    )
    .default("instance_principal"),
);

pub const CONFIG_FILE: Key<Option<String>> = Key::new(Param::new(
    "config_file",
    "OCI config file",
    "The OCI config file of oci_auth=api_key (user, fingerprint, tenancy, region, key_file). \
     Default: ~/.oci/config of the user the agent runs as.",
));

pub const AUTH_ENDPOINT_URL: Key<Option<String>> = Key::new(Param::new(
    "auth_endpoint_url",
    "OCI federation endpoint URL",
    "Where instance principals get their session token. Default: \
     https://auth.<region>.<realm domain> from instance metadata.",
));

pub const DELETE_ON_STOP: Key<bool> = Key::new(
    Param::new(
        "delete_on_stop",
        "Delete the private IP at stop (oci)",
        "With cloud=oci, stop deletes the private IP object when this VNIC still holds it. By \
         default it is left in place: the next node's start moves it (one update instead of a \
         create).",
    )
    .ty(Type::Boolean)
    .default("false"),
);

pub const PROXY: Key<Option<String>> = Key::new(Param::new(
    "proxy",
    "HTTP proxy for the cloud API",
    "http://[user:password@]host:port of an HTTP proxy that every cloud API call goes \
     through, https endpoints by CONNECT: aws, EC2 and STS (role_arn); oci, the core \
     services and the federation endpoint of instance principals. Instance metadata \
     (169.254.169.254) is always reached directly. Pacemaker and Clusterware do not pass a \
     shell's HTTPS_PROXY to agents, so this parameter is the way to set one; when it is \
     unset, HTTPS_PROXY (else ALL_PROXY, then HTTP_PROXY) and NO_PROXY of the agent's own \
     environment are used, for both clouds.",
));

pub const NO_PROXY: Key<Option<String>> = Key::new(Param::new(
    "no_proxy",
    "Hosts reached without the proxy",
    "With proxy: comma-separated host names, domains (.example.com: every name below it), \
     IP addresses or CIDR blocks that cloud API calls reach directly, as NO_PROXY does; e.g. \
     .vpce.amazonaws.com when endpoint_url is a VPC interface endpoint. Instance metadata \
     is always direct.",
));

/// The cloud API parameters every agent that calls a cloud takes, in this order.
pub const AWS_API: [Param; 6] = [
    REGION.param,
    PROFILE.param,
    ROLE_ARN.param,
    ENDPOINT_URL.param,
    PROXY.param,
    NO_PROXY.param,
];
