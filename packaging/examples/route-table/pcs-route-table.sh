# Pacemaker: an overlay IP reached through VPC route tables (ocf:cloudha:route-table), the
# "backend cluster" pattern: clients in several subnets/AZs reach an address outside the VPC
# CIDR because their subnets' route tables send it to the active node's ENI.
# Every parameter is described in ocf_cloudha_route-table(7) and `cloudha route-table --help`.
# Install the package on every node; iam-policy-route-table.json lists the permissions.
#
# Before: a route for the overlay IP in the route table of every client subnet (pointing at
# either node), and source/destination check off on both nodes' ENIs:
#   aws ec2 create-route --route-table-id rtb-0aaa... --destination-cidr-block 192.168.100.10/32 \
#       --network-interface-id eni-0node1...
#   aws ec2 modify-network-interface-attribute --network-interface-id eni-0node1... \
#       --no-source-dest-check

# The tables listed: start points every one of them at this node's ENI (all at once).
pcs resource create db-overlay ocf:cloudha:route-table \
    ip=192.168.100.10 route_tables=rtb-0aaaaaaaaaaaaaaa1,rtb-0aaaaaaaaaaaaaaa2,rtb-0aaaaaaaaaaaaaaa3 \
    nic=eth0 \
    op monitor interval=10s \
    op monitor interval=60s OCF_CHECK_LEVEL=10

# route_tables=auto (the default): every route table of the VPC that already holds a route for
# the address. create_missing=true (listed tables only) creates the route where it is missing.
pcs resource create app-overlay ocf:cloudha:route-table ip=192.168.100.20 route_tables=auto nic=eth0
pcs resource create app-overlay2 ocf:cloudha:route-table \
    ip=192.168.100.30 route_tables=rtb-0aaaaaaaaaaaaaaa1 create_missing=true nic=eth0

# Route changes with a role of their own (the instance role stays minimal), and turning the
# source/destination check off at start instead of refusing to start:
pcs resource update db-overlay role_arn=arn:aws:iam::111122223333:role/cloudha-routes \
    source_dest_check=disable

# With the service that listens on it, so they move together:
pcs resource create db-overlay3 ocf:cloudha:route-table ip=192.168.100.40 nic=eth0 --group db

# Pre-flight on each node before trusting failover (metadata, ENI, VPC CIDR, tables,
# source/destination check, IAM by DryRun):
cloudha route-table check ip=192.168.100.10 route_tables=rtb-0aaaaaaaaaaaaaaa1 nic=eth0
