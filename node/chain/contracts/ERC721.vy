# pragma version 0.4.3
# pragma evm-version prague
"""
@title A minimal ERC-721 for tests and the demo
@notice Ownership, approvals (per token and per operator), `transferFrom` and `mint` for the
        deployer. Token ids start at 1: the settlement contract reads id 0 as "an ERC-20".
        The `safeTransferFrom` variants (receiver callbacks) are left out: settlement moves
        tokens with `transferFrom` only.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    token_id: indexed(uint256)

event Approval:
    owner: indexed(address)
    approved: indexed(address)
    token_id: indexed(uint256)

event ApprovalForAll:
    owner: indexed(address)
    operator: indexed(address)
    approved: bool

ERC165_INTERFACE: constant(bytes4) = 0x01ffc9a7
ERC721_INTERFACE: constant(bytes4) = 0x80ac58cd

name: public(String[32])
symbol: public(String[16])
ownerOf: public(HashMap[uint256, address])
balanceOf: public(HashMap[address, uint256])
getApproved: public(HashMap[uint256, address])
isApprovedForAll: public(HashMap[address, HashMap[address, bool]])
minter: public(address)


@deploy
def __init__(name: String[32], symbol: String[16]):
    self.name = name
    self.symbol = symbol
    self.minter = msg.sender


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    return interface_id == ERC165_INTERFACE or interface_id == ERC721_INTERFACE


@external
def approve(approved: address, token_id: uint256):
    owner: address = self.ownerOf[token_id]
    assert owner != empty(address), "no such token"
    assert msg.sender == owner or self.isApprovedForAll[owner][msg.sender], "not allowed"
    self.getApproved[token_id] = approved
    log Approval(owner=owner, approved=approved, token_id=token_id)


@external
def setApprovalForAll(operator: address, approved: bool):
    self.isApprovedForAll[msg.sender][operator] = approved
    log ApprovalForAll(owner=msg.sender, operator=operator, approved=approved)


@external
def transferFrom(sender: address, receiver: address, token_id: uint256):
    owner: address = self.ownerOf[token_id]
    assert owner != empty(address) and owner == sender, "sender does not own the token"
    assert receiver != empty(address), "transfer to the zero address"
    assert (
        msg.sender == owner
        or self.getApproved[token_id] == msg.sender
        or self.isApprovedForAll[owner][msg.sender]
    ), "not allowed"
    self.getApproved[token_id] = empty(address)
    self.balanceOf[sender] -= 1
    self.balanceOf[receiver] += 1
    self.ownerOf[token_id] = receiver
    log Transfer(sender=sender, receiver=receiver, token_id=token_id)


@external
def mint(receiver: address, token_id: uint256):
    assert msg.sender == self.minter, "only the minter mints"
    assert token_id != 0, "token ids start at 1"
    assert receiver != empty(address), "mint to the zero address"
    assert self.ownerOf[token_id] == empty(address), "token exists"
    self.ownerOf[token_id] = receiver
    self.balanceOf[receiver] += 1
    log Transfer(sender=empty(address), receiver=receiver, token_id=token_id)
