# Pacemaker: a unicast VXLAN full mesh (ocf:cloudha:vxlan-fdb) for networks that carry no
# multicast or broadcast (clouds): every node runs the same clone with the same parameters, and
# broadcast and multicast sent on the VXLAN device reach every other node as unicast UDP.
# Every parameter is described in ocf_cloudha_vxlan-fdb(7) and `cloudha vxlan-fdb --help`.
# Install the package on every node; allow UDP 4789 between the nodes (security group, NSG).

# Three nodes whose underlay addresses are 192.168.1.11-13; each gets its own overlay address
# from the per-node list (the key is the node's underlay address or host name).
pcs resource create mesh ocf:cloudha:vxlan-fdb \
    vni=100 peers="192.168.1.11 192.168.1.12 192.168.1.13" \
    address="192.168.1.11=10.99.0.1/24 192.168.1.12=10.99.0.2/24 192.168.1.13=10.99.0.3/24" \
    op monitor interval=10s \
    clone interleave=true

# The peers are reloadable: adding a node changes the flood entries without taking the
# device down.
pcs resource update mesh peers="192.168.1.11 192.168.1.12 192.168.1.13 192.168.1.14" \
    address="192.168.1.11=10.99.0.1/24 192.168.1.12=10.99.0.2/24 192.168.1.13=10.99.0.3/24 192.168.1.14=10.99.0.4/24"

# The peers from the cluster's own corosync nodelist (ring0_addr of every node), a bridge for
# containers or VMs, no overlay address on the host:
pcs resource create lan2 ocf:cloudha:vxlan-fdb \
    vni=200 peers_from=corosync bridge=br-lan2 \
    op monitor interval=10s \
    clone interleave=true

# A vip (cloud=none) on the overlay, only where the mesh runs:
pcs resource create overlay-vip ocf:cloudha:vip ip=10.99.0.100 cidr_netmask=24 nic=vxlan100 \
    cloud=none
pcs constraint order start mesh-clone then start overlay-vip
pcs constraint colocation add overlay-vip with mesh-clone INFINITY

