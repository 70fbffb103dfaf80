# Pacemaker: a virtual IP address with the cloudha vip agent (ocf:cloudha:vip).
# Every parameter is described in ocf_cloudha_vip(7) and `cloudha vip --help`.
# The agent is /usr/lib/ocf/resource.d/cloudha/vip, a link to /usr/sbin/cloudha; install the
# package on every node.

# On a plain L2 network (on-premises, a lab): the address plus gratuitous ARP.
pcs resource create app-vip ocf:cloudha:vip \
    ip=192.0.2.200 cidr_netmask=24 nic=eth0 cloud=none \
    op monitor interval=10s \
    op monitor interval=60s OCF_CHECK_LEVEL=10

# IPv6 (unsolicited neighbour advertisements instead of gratuitous ARP).
pcs resource create app-vip6 ocf:cloudha:vip ip=fd00::200 cidr_netmask=64 nic=eth0 cloud=none

# In a group with the service that listens on it, so they move together (the group is
# created if it does not exist; then add the service behind it: pcs resource group add web SERVICE).
pcs resource create web-vip ocf:cloudha:vip ip=192.0.2.201 cidr_netmask=24 nic=eth0 cloud=none \
    --group web

# arp_count and arp_interval are reloadable: changing them does not restart the resource.
pcs resource update app-vip arp_count=3

# Trace every action of one resource to /var/lib/heartbeat/trace_ra/vip/ (reloadable too; every
# monitor writes a file, so turn it off again with trace_ra=0).
pcs resource update app-vip trace_ra=1

# Amazon EC2: a secondary private IP of the nodes' subnet, moved to the ENI of nic through the
# EC2 API (credentials from the instance role; iam-policy-vip.json lists what it needs). The
# Elastic IP is optional. A recurring monitor asks EC2 at most every cloud_check_interval s.
pcs resource create db-vip ocf:cloudha:vip \
    ip=10.0.1.200 nic=eth0 cloud=aws eip_allocation_id=eipalloc-0123456789abcdef0 \
    op monitor interval=10s \
    op monitor interval=60s OCF_CHECK_LEVEL=10
# Another account's VPC (shared VPC) or a VPC interface endpoint:
pcs resource update db-vip role_arn=arn:aws:iam::111122223333:role/cloudha-vip \
    endpoint_url=https://vpce-0123456789abcdef0-abcdefgh.ec2.eu-west-1.vpce.amazonaws.com
# Pre-flight on each node before trusting failover (metadata, credentials, ENI, subnet, IAM):
cloudha vip check ip=10.0.1.200 nic=eth0 cloud=aws

# Oracle Cloud: a secondary private IP of the nodes' (regional) subnet moved to the VNIC of nic
# (instance principals by default; oci-policy-vip.txt has the dynamic group and policy).
pcs resource create oci-vip ocf:cloudha:vip ip=10.0.2.200 nic=eth0 cloud=oci \
    op monitor interval=10s \
    op monitor interval=60s OCF_CHECK_LEVEL=10
# With an API key instead of the instance's identity:
pcs resource update oci-vip oci_auth=api_key config_file=/root/.oci/config profile=DEFAULT

# cloud=auto (the default) recognises the cloud from /sys/class/dmi/id: cloud=aws on EC2,
# cloud=oci on OCI, cloud=none elsewhere.

# Try a configuration without a cluster (Pacemaker >= 2.1.1):
crm_resource --validate --class ocf --provider cloudha --agent vip \
    --option ip=192.0.2.200 --option cloud=none
crm_resource --show-metadata ocf:cloudha:vip
# or directly, with the same parameters as name=value words:
cloudha vip validate-all ip=192.0.2.200 cloud=none
