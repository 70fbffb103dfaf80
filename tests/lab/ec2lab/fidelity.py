"""Fidelity fixes to moto's EC2 backend: where moto 5.2 differs from EC2 in ways that would hide
the bugs the agents must not have, restore EC2's behaviour.

``apply()`` patches moto in this process (idempotent). Every fix names the EC2 behaviour it
restores. Errors are ``moto.ec2.exceptions.EC2ClientError`` subclasses: moto serialises those as
EC2 errors (HTTP 400); anything else becomes an HTTP 500.

DryRun is handled in front of moto for every action (see ``server.IamGate``), which fixes the
route-table actions whose DryRun moto ignores.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading

from moto.ec2 import exceptions as ec2x
from moto.ec2.models import elastic_ip_addresses as eip_models
from moto.ec2.models import route_tables as rt_models
from moto.ec2.models.elastic_ip_addresses import ElasticAddress, ElasticAddressBackend
from moto.ec2.models.elastic_network_interfaces import NetworkInterface, NetworkInterfaceBackend
from moto.ec2.models.route_tables import Route, RouteBackend
from moto.ec2.responses.elastic_ip_addresses import ElasticIPAddresses
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces
from moto.core.responses import ActionResult, EmptyResult

# Elastic IPs come from TEST-NET-2 (RFC 5737), never from a range that exists anywhere.
EIP_RANGE = ipaddress.ip_network("198.51.100.0/24")

_applied = False
_eip_lock = threading.Lock()


class InvalidParameterValue(ec2x.EC2ClientError):
    def __init__(self, message: str):
        super().__init__("InvalidParameterValue", message)


class AlreadyAssociated(ec2x.EC2ClientError):
    def __init__(self, what: str):
        super().__init__("Resource.AlreadyAssociated", f"resource {what} is already associated.")


# ---------------------------------------------------------------- private IP addresses


def _ips(eni: NetworkInterface) -> list[str]:
    return [a["PrivateIpAddress"] for a in eni.private_ip_addresses]


def _holder(backend, ip: str) -> NetworkInterface | None:
    for eni in backend.enis.values():
        if ip in _ips(eni):
            return eni
    return None


def _check_in_subnet(eni: NetworkInterface, ip: str) -> None:
    """EC2: an address must lie in the ENI's subnet, outside the 4 first and the last address
    (AWS reserves them), else InvalidParameterValue."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidParameterValue(f"Invalid value '{ip}' for IP address") from None
    net = ipaddress.ip_network(eni.subnet.cidr_block)
    if addr not in net:
        raise InvalidParameterValue(
            f"Address {ip} does not fall within the subnet's address range")
    if int(addr) - int(net.network_address) < 4 or addr == net.broadcast_address:
        raise InvalidParameterValue(f"Address {ip} is in subnet's reserved address range")


def assign_private_ip_addresses(self, eni_id, private_ip_addresses=None,
                                secondary_ips_count=None, allow_reassignment=False):
    """EC2 AssignPrivateIpAddresses. Returns the addresses this call assigned.

    Restores: with AllowReassignment the address MOVES (EC2 removes it from the ENI that held
    it); without it an address held by another ENI is refused (InvalidParameterValue, "in use");
    an address outside the subnet is refused; a primary address never moves."""
    eni = self.get_network_interface(eni_id)
    assigned = []
    for ip in private_ip_addresses or []:
        _check_in_subnet(eni, ip)
        holder = _holder(self, ip)
        if holder is eni:
            continue  # already there: EC2 answers success and changes nothing
        if holder is not None:
            if holder.private_ip_address == ip:
                raise InvalidParameterValue(
                    f"Address {ip} is the primary private IP address of {holder.id}")
            if not allow_reassignment:
                raise InvalidParameterValue(f"Address {ip} is in use.")
            holder.private_ip_addresses[:] = [
                a for a in holder.private_ip_addresses if a["PrivateIpAddress"] != ip]
        eni.private_ip_addresses.append({"Primary": False, "PrivateIpAddress": ip})
        assigned.append(ip)
    net = ipaddress.ip_network(eni.subnet.cidr_block)
    hosts = itertools.islice(net.hosts(), 3, None)  # .1-.3 are AWS's
    while secondary_ips_count and secondary_ips_count > 0:
        ip = str(next(hosts))  # StopIteration = subnet full; fine for a lab
        if _holder(self, ip) is None:
            eni.private_ip_addresses.append({"Primary": False, "PrivateIpAddress": ip})
            assigned.append(ip)
            secondary_ips_count -= 1
    return eni, assigned


def unassign_private_ip_addresses(self, eni_id, private_ip_address=None):
    """EC2 UnassignPrivateIpAddresses. Restores: an address that is not on this ENI is refused
    (EC2: "Some of the specified addresses are not assigned to interface ...") and so is the
    primary address; nothing is changed when any address is refused."""
    eni = self.get_network_interface(eni_id)
    wanted = list(private_ip_address or [])
    missing = [ip for ip in wanted if ip not in _ips(eni)]
    if missing:
        raise InvalidParameterValue(
            f"Some of the specified addresses are not assigned to interface {eni.id}")
    if eni.private_ip_address in wanted:
        raise InvalidParameterValue(
            f"The primary private IP address {eni.private_ip_address} cannot be unassigned")
    eni.private_ip_addresses[:] = [
        a for a in eni.private_ip_addresses if a["PrivateIpAddress"] not in wanted]
    return eni


def assign_response(self):
    """The response lists only the addresses this call assigned (moto lists all of the ENI's)."""
    eni_id = self._get_param("NetworkInterfaceId")
    count = self._get_int_param("SecondaryPrivateIpAddressCount", 0)
    ips = self._get_param("PrivateIpAddresses", [])
    allow = str(self._get_param("AllowReassignment", "false")).lower() == "true"
    eni, assigned = self.ec2_backend.assign_private_ip_addresses(eni_id, ips, count, allow)
    return ActionResult({
        "NetworkInterfaceId": eni.id,
        "AssignedPrivateIpAddresses": [{"PrivateIpAddress": ip} for ip in assigned],
    })


def unassign_response(self):
    eni_id = self._get_param("NetworkInterfaceId")
    ips = self._get_param("PrivateIpAddresses", [])
    self.ec2_backend.unassign_private_ip_addresses(eni_id, ips)
    return EmptyResult()


_eni_filter_value = NetworkInterface.get_filter_value


def eni_filter_value(self, filter_name, method_name=None):
    """DescribeNetworkInterfaces filters. Restores: addresses.private-ip-address matches every
    address of the ENI (primary and secondaries; moto only the primary, so a VIP's holder is
    invisible); attachment.device-index and attachment.status work (moto: HTTP 500)."""
    if filter_name == "addresses.private-ip-address":
        return _ips(self)
    if filter_name == "addresses.primary":
        return ["true"] if self.private_ip_address else []
    if filter_name == "attachment.device-index":
        return str(self.device_index) if self.instance is not None else None
    if filter_name == "attachment.status":
        return "attached" if self.instance is not None else None
    if filter_name == "mac-address":
        return self.mac_address
    if filter_name == "status":
        return self.status
    return _eni_filter_value(self, filter_name, method_name)


# ---------------------------------------------------------------- Elastic IPs


def random_eip() -> str:
    """An unused address of EIP_RANGE (moto hands out 127.x.y.z, a range every host has)."""
    from moto.ec2.models import ec2_backends
    with _eip_lock:
        used = {a.public_ip for acc in ec2_backends.values() for b in acc.values()
                for a in b.addresses}
        for ip in itertools.islice(EIP_RANGE.hosts(), 9, None):
            if str(ip) not in used:
                return str(ip)
    raise ec2x.EC2ClientError("AddressLimitExceeded",
                              "The maximum number of addresses has been reached.")


def eip_instance_id(self):
    """InstanceId of an EIP: the instance of the ENI it is associated with; omitted when
    unassociated (EC2 omits it; moto answers "")."""
    eni = self.eni
    if eni is not None and eni.instance is not None:
        return eni.instance.id
    return self.instance.id if self.instance is not None else None


def eip_network_interface_id(self):
    return self.eni.id if self.eni is not None else None


def eip_private_ip(self):
    """The private address the EIP maps to: the one asked for with PrivateIpAddress, else the
    ENI's primary (EC2)."""
    if self.eni is None:
        return None
    return getattr(self, "lab_private_ip", None) or self.eni.private_ip_address


def associate_address(self, instance=None, eni=None, address=None, allocation_id=None,
                      reassociate=False, private_ip=None):
    """EC2 AssociateAddress (VPC). Restores: an EIP associated anywhere else is refused with
    Resource.AlreadyAssociated unless AllowReassociation (moto lets an ENI association be taken
    by an instance silently); a move removes the public IP from the old ENI (moto leaves it);
    PrivateIpAddress must be one of the target ENI's addresses."""
    eip = (self.address_by_ip([address]) if address
           else self.address_by_allocation([allocation_id]))[0]
    target = eni if eni is not None else instance.nics[0]
    if private_ip and private_ip not in _ips(target):
        raise InvalidParameterValue(
            f"The specified private IP address {private_ip} is not assigned to {target.id}")
    private_ip = private_ip or target.private_ip_address
    current = (eip.eni, eip_private_ip(eip)) if eip.eni is not None else None
    if current is not None and current != (target, private_ip) and not reassociate:
        raise AlreadyAssociated(eip.allocation_id or eip.public_ip)
    if eip.eni is not None and eip.eni is not target:
        eip.eni.public_ip = None
    # Another EIP already on that private address is displaced (EC2 disassociates it).
    for other in self.addresses:
        if other is not eip and other.eni is target and eip_private_ip(other) == private_ip:
            self.disassociate_address(address=other.public_ip)
    eip.eni, eip.instance = target, target.instance
    eip.lab_private_ip = private_ip
    if private_ip == target.private_ip_address:
        target.public_ip = eip.public_ip
    eip.association_id = eip_models.random_eip_association_id()
    return eip


def associate_response(self):
    """AssociateAddress request parsing. Restores: AllowReassociation=false means false (moto
    takes the string "false" as true); PrivateIpAddress is passed on (moto drops it)."""
    backend = self.ec2_backend
    params = self._get_params()
    instance = eni = None
    if "InstanceId" in params:
        instance = backend.get_instance(self._get_param("InstanceId"))
    elif "NetworkInterfaceId" in params:
        eni = backend.get_network_interface(self._get_param("NetworkInterfaceId"))
    else:
        raise ec2x.EC2ClientError("MissingParameter",
                                  "Invalid request, expect InstanceId/NetworkId parameter.")
    if "PublicIp" not in params and "AllocationId" not in params:
        raise ec2x.EC2ClientError("MissingParameter",
                                  "Invalid request, expect PublicIp/AllocationId parameter.")
    reassociate = str(self._get_param("AllowReassociation", "false")).lower() == "true"
    self.error_on_dryrun()
    eip = backend.associate_address(
        instance=instance, eni=eni, address=self._get_param("PublicIp"),
        allocation_id=self._get_param("AllocationId"), reassociate=reassociate,
        private_ip=self._get_param("PrivateIpAddress"))
    return ActionResult({"AssociationId": eip.association_id})


_orig_disassociate = ElasticAddressBackend.disassociate_address


def disassociate_address(self, address=None, association_id=None):
    eips = self.address_by_ip([address]) if address else \
        self.address_by_association([association_id])
    _orig_disassociate(self, address=address, association_id=association_id)
    for eip in eips:
        eip.lab_private_ip = None


# ---------------------------------------------------------------- routes


def route_instance_id(self):
    """A route to an ENI shows the instance it is attached to (EC2 shows both ids)."""
    if self.instance is not None:
        return self.instance.id
    if self.interface is not None and self.interface.instance is not None:
        return self.interface.instance.id
    return None


def route_interface_id(self):
    """A route to an instance shows its primary ENI (EC2 shows both ids)."""
    if self.interface is not None:
        return self.interface.id
    if self.instance is not None and self.instance.nics:
        return self.instance.nics[0].id
    return None


def route_state(self):
    """blackhole when the target ENI is gone or detached, or the instance is not running
    (EC2); moto always says active."""
    if self.interface is not None:
        backend = self.route_table.ec2_backend
        if self.interface.id not in backend.enis or self.interface.instance is None:
            return "blackhole"
    if self.instance is not None and self.instance._state.name != "running":
        return "blackhole"
    return "active"


_orig_create_route = RouteBackend.create_route


def create_route(self, route_table_id, destination_cidr_block, *args, **kw):
    """CreateRoute for a destination that already has a route: RouteAlreadyExists (EC2; moto
    silently replaces the route)."""
    table = self.get_route_table(route_table_id)
    ipv6 = kw.get("destination_ipv6_cidr_block")
    plist = kw.get("destination_prefix_list_id")
    route_id = rt_models.generate_route_id(table.id, destination_cidr_block, ipv6, plist)
    if route_id in table._routes:
        raise ec2x.RouteAlreadyExistsError(destination_cidr_block or ipv6 or plist)
    return _orig_create_route(self, route_table_id, destination_cidr_block, *args, **kw)


# ---------------------------------------------------------------- apply


def apply() -> None:
    """Patch moto in this process (once)."""
    global _applied
    if _applied:
        return
    _applied = True
    for owner, fixes in PATCHES.items():
        for name, value in fixes.items():
            setattr(owner, name, value)


# Where each fix goes: kept as data so a fix is one entry.
PATCHES = {
    NetworkInterfaceBackend: dict(assign_private_ip_addresses=assign_private_ip_addresses,
                                  unassign_private_ip_addresses=unassign_private_ip_addresses),
    ElasticNetworkInterfaces: dict(assign_private_ip_addresses=assign_response,
                                   unassign_private_ip_addresses=unassign_response),
    NetworkInterface: dict(get_filter_value=eni_filter_value),
    eip_models: dict(random_ip=random_eip),
    ElasticAddress: dict(instance_id=property(eip_instance_id),
                         network_interface_id=property(eip_network_interface_id),
                         private_ip_address=property(eip_private_ip)),
    ElasticAddressBackend: dict(associate_address=associate_address,
                                disassociate_address=disassociate_address),
    ElasticIPAddresses: dict(associate_address=associate_response),
    Route: dict(instance_id=property(route_instance_id),
                network_interface_id=property(route_interface_id),
                state=property(route_state)),
    RouteBackend: dict(create_route=create_route),
}
