# Oracle Clusterware: the vip agent as the ACTION_SCRIPT of a resource.
#
# Clusterware runs the script with start, stop, check, clean (or abort) as the only argument
# and exports every resource attribute as _CRS_<ATTRIBUTE>; the agent recognises it by
# _CRS_NAME. The script runs as the resource's owner, and adding an address needs root.
# Install the package on every hosting member.

# 1. A plain cluster_resource (no custom attributes): the parameters come from
#    /etc/cloudha/<resource name>.conf, here /etc/cloudha/myrac02-vip.ec2.conf (the example
#    next to this file), with the OCF parameter names. Put it on every hosting member.
install -m 0644 -D myrac02-vip.ec2.conf /etc/cloudha/myrac02-vip.ec2.conf

crsctl add resource myrac02-vip.ec2 -type cluster_resource -attr "CHECK_INTERVAL=10,ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/vip,PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02,AUTO_START=always,START_DEPENDENCIES=hard(intermediate:ora.myracnode02.vip),RELOCATE_BY_DEPENDENCY=1,STOP_DEPENDENCIES=hard(intermediate:ora.myracnode02.vip)"
# Registered by another user than root? The agent needs root to add the address:
crsctl setperm resource myrac02-vip.ec2 -o root
crsctl start resource myrac02-vip.ec2
crsctl status resource myrac02-vip.ec2 -f

# 2. A resource type whose attributes carry the parameters (no .conf file needed). Each OCF
#    parameter is an attribute of the same name in capitals (ip -> IP, exported as _CRS_IP);
#    an empty value means the agent's own default. Resource attributes override a .conf file.
crsctl add type cloudha.vip.type -basetype cluster_resource -attr "@CRS_TYPE_ATTRS@"

crsctl add resource myrac02-vip2 -type cloudha.vip.type -attr "ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/vip,CHECK_INTERVAL=10,IP=10.0.1.201,NIC=eth0,PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02,AUTO_START=always"

# Check codes the agent returns: 0 ONLINE, 1 UNPLANNED_OFFLINE (was online, now gone),
# 2 PLANNED_OFFLINE, 3 UNKNOWN, 5 FAILED. Lines starting CRS_WARNING:/CRS_ERROR: reach crsctl.
# Try the agent by hand as Clusterware would call it:
env _CRS_NAME=myrac02-vip.ec2 /usr/lib/ocf/resource.d/cloudha/vip check; echo "check: $?"
