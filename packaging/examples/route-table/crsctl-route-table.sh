# Oracle Clusterware: the route-table agent as the ACTION_SCRIPT of a resource (an overlay IP
# outside the VPC CIDR, routed to the active node by VPC route tables).
#
# Clusterware runs the script with start, stop, check, clean (or abort) and exports every
# resource attribute as _CRS_<ATTRIBUTE>. Adding the address needs root.

# A plain cluster_resource reads its parameters from /etc/cloudha/<resource name>.conf
# (route-table.conf next to this file is the commented template):
#   ip=192.168.100.10
#   route_tables=rtb-0aaaaaaaaaaaaaaa1,rtb-0aaaaaaaaaaaaaaa2
#   nic=eth0
crsctl add resource db-overlay -type cluster_resource -attr "CHECK_INTERVAL=10,ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/route-table,PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02,AUTO_START=always"
crsctl setperm resource db-overlay -o root

# Or a type whose attributes carry the parameters (ip -> IP, route_tables -> ROUTE_TABLES):
crsctl add type cloudha.route-table.type -basetype cluster_resource -attr "@CRS_TYPE_ATTRS@"
crsctl add resource db-overlay2 -type cloudha.route-table.type -attr "ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/route-table,CHECK_INTERVAL=10,IP=192.168.100.11,ROUTE_TABLES=rtb-0aaaaaaaaaaaaaaa1,NIC=eth0,PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02"

# Check codes: 0 ONLINE, 1 UNPLANNED_OFFLINE (every table now points at another node),
# 2 PLANNED_OFFLINE, 3 UNKNOWN, 5 FAILED.
env _CRS_NAME=db-overlay /usr/lib/ocf/resource.d/cloudha/route-table check; echo "check: $?"
