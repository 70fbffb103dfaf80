# Oracle Clusterware: the route-table agent as the ACTION_SCRIPT of a resource (an overlay IP
# outside the VPC CIDR, routed to the active node by VPC route tables).
#
# Clusterware runs the script with start, stop, check, clean (or abort) and exports every
# resource attribute as _CRS_<ATTRIBUTE>. Adding the address needs root.

# 1. A plain cluster_resource reads its parameters from /etc/cloudha/<resource name>.conf,
#    here /etc/cloudha/db-overlay.conf (the example next to this file; route-table.conf is the
#    commented template of every parameter). Put it on every hosting member.
install -m 0644 -D db-overlay.conf /etc/cloudha/db-overlay.conf
crsctl add resource db-overlay -type cluster_resource -attr "CHECK_INTERVAL=10,ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/route-table,PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02,AUTO_START=always"
crsctl setperm resource db-overlay -o root

# 2. Or a type whose attributes carry the parameters (ip -> IP, route_tables -> ROUTE_TABLES):
crsctl add type cloudha.route-table.type -basetype cluster_resource -attr "@CRS_TYPE_ATTRS@"
crsctl add resource db-overlay2 -type cloudha.route-table.type -attr "ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/route-table,CHECK_INTERVAL=10,IP=192.168.100.11,ROUTE_TABLES=rtb-0aaaaaaaaaaaaaaa1,NIC=eth0,PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02"

# Check codes: 0 ONLINE, 1 UNPLANNED_OFFLINE (every table now points at another node),
# 2 PLANNED_OFFLINE, 3 UNKNOWN, 5 FAILED.
env _CRS_NAME=db-overlay /usr/lib/ocf/resource.d/cloudha/route-table check; echo "check: $?"
