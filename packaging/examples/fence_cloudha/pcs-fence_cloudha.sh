# Pacemaker: fencing through the cloud API with fence_cloudha (/usr/sbin/fence_cloudha, a link
# to /usr/sbin/cloudha). Every parameter is described in fence_cloudha(8); the permissions are
# in iam-policy-fence.json (AWS) and oci-policy-fence.txt (OCI). Install the package on every
# node: Pacemaker's fencer runs the device on a node other than the one it fences.

# Amazon EC2, two nodes: one device per node, kept off the node it fences. Each node name is
# the Name tag of its instance (else map it: pcmk_host_map="node1:i-0123456789abcdef0").
# delay on node1's device: after a split, node1's peer waits, so both cannot power each other
# off at once. Pacemaker's fencing action is reboot; pcmk_reboot_action=off leaves the
# instance stopped for a person to look at.
pcs stonith create fence-node1 fence_cloudha cloud=aws pcmk_host_list=node1 delay=10 \
    op monitor interval=60s
pcs stonith create fence-node2 fence_cloudha cloud=aws pcmk_host_list=node2 \
    pcmk_reboot_action=off \
    op monitor interval=60s
pcs constraint location fence-node1 avoids node1=INFINITY
pcs constraint location fence-node2 avoids node2=INFINITY

# Oracle Cloud: instance principals by default; with an API key instead:
pcs stonith create fence-node3 fence_cloudha cloud=oci pcmk_host_list=node3 \
    oci_auth=api_key config_file=/root/.oci/config profile=DEFAULT \
    op monitor interval=60s
pcs constraint location fence-node3 avoids node3=INFINITY

# Fencing on (the default once a device exists; pcs shows it with `pcs property`):
pcs property set stonith-enabled=true

# By hand, from another node: the power state of an instance (0 running, 2 stopped).
fence_cloudha -o status -n i-0123456789abcdef0 --cloud=aws
