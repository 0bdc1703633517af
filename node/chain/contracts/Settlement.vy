# pragma version 0.4.3
# pragma evm-version prague
"""
@title marketnode settlement
@notice Settles batches of trades matched off chain by a marketnode node. Each trade names
        a buy and a sell order, both signed by their owners under EIP-712, and the fill
        (lots at a price in ticks) with the fee each side pays.
@dev Non-custodial: assets stay in the owners' wallets until a trade settles, and are then
     pulled with `transferFrom` on the owners' approvals (the Seaport and 0x way) rather
     than from escrowed deposits. Escrow would make a settlement cheaper (only internal
     balances move) but would hold every owner's assets in this contract, add deposit and
     withdrawal flows (and their delays) before anyone can trade, and make this contract
     the one place where everyone's assets can be lost. With pulls, an owner's exposure is
     the approval they chose, revocable at any time, and a trade whose assets are gone is
     skipped, not settled.

     A batch never reverts because of one trade: an invalid trade is skipped with a
     `TradeSkipped` event naming it and a reason code. The transfers of a trade run in a
     call of this contract to itself (`execute_trade`), so a token that reverts, returns
     false or has no code undoes that trade's transfers and fill records alone.

     Replays: each trade carries the node's trade id, recorded in a bitmap when it settles;
     a trade id seen before is skipped (`ALREADY_SETTLED`), so a rebroadcast batch never moves
     assets twice, even for a partial fill. `filled[orderHash]` (lots) bounds the fills of
     an order by its quantity whatever the trade ids say.

     Cancels: an owner cancels one order (`cancel`), or signs an EIP-712 `Cancel` that anyone
     may bring on chain (`cancel_signed`: the relayer brings the ones the node received), or
     voids every order below a nonce (`increment_min_nonce`, `set_min_nonce`: only upward).
"""

struct Order:
    owner: address
    base: address
    baseTokenId: uint256
    quote: address
    side: uint8
    price: uint64
    quantity: uint64
    lotUnits: uint256
    tickUnits: uint256
    nonce: uint256
    expiry: uint64
    maxFeeBps: uint16

struct Trade:
    tradeId: uint256
    buy: Order
    sell: Order
    buySignature: Bytes[65]
    sellSignature: Bytes[65]
    quantity: uint64
    price: uint64
    buyFee: uint256
    sellFee: uint256

event TradeSettled:
    trade_id: indexed(uint256)
    buy_hash: indexed(bytes32)
    sell_hash: indexed(bytes32)
    quantity: uint64
    price: uint64

event TradeSkipped:
    trade_id: indexed(uint256)
    index: uint256
    reason: uint8
    order_hash: bytes32

event OrderCancelled:
    owner: indexed(address)
    order_hash: indexed(bytes32)

event MinNonceRaised:
    owner: indexed(address)
    min_nonce: uint256

event RelayerChanged:
    relayer: indexed(address)

event FeeRecipientChanged:
    fee_recipient: indexed(address)

event AdminChanged:
    admin: indexed(address)

# Skip reasons, as in `marketnode.node.chain.contracts.SkipReason`.
ORDERS_MISMATCHED: constant(uint8) = 1
ALREADY_SETTLED: constant(uint8) = 2
PRICE_OUTSIDE_LIMIT: constant(uint8) = 3
EXPIRED: constant(uint8) = 4
NONCE_BELOW_MINIMUM: constant(uint8) = 5
CANCELLED: constant(uint8) = 6
OVERFILL: constant(uint8) = 7
FEE_OVER_MAX: constant(uint8) = 8
BAD_SIGNATURE: constant(uint8) = 9
BUYER_TRANSFER_FAILED: constant(uint8) = 10
SELLER_TRANSFER_FAILED: constant(uint8) = 11
EXECUTION_FAILED: constant(uint8) = 12

BUY: constant(uint8) = 0
SELL: constant(uint8) = 1
MAX_BATCH: constant(uint256) = 100
BPS: constant(uint256) = 10000
# Bounds on a lot's and a tick's worth: with uint64 prices and quantities, every amount
# and fee product stays far below 2**256, so no arithmetic in a batch can revert it.
MAX_UNITS: constant(uint256) = 2**96
# Half of secp256k1's group order: signatures with s above it are refused (EIP-2).
SECP256K1_ORDER: constant(uint256) = (
    115792089237316195423570985008687907852837564279074904382605163141518161494337
)
HALF_CURVE_ORDER: constant(uint256) = SECP256K1_ORDER // 2

DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ORDER_TYPEHASH: constant(bytes32) = keccak256(
    "Order(address owner,address base,uint256 baseTokenId,address quote,uint8 side,"
    "uint64 price,uint64 quantity,uint256 lotUnits,uint256 tickUnits,uint256 nonce,"
    "uint64 expiry,uint16 maxFeeBps)"
)
CANCEL_TYPEHASH: constant(bytes32) = keccak256("Cancel(address owner,bytes32 orderHash)")
NAME_HASH: constant(bytes32) = keccak256("marketnode")
VERSION_HASH: constant(bytes32) = keccak256("1")
EXECUTE_TRADE: constant(bytes4) = method_id(
    "execute_trade(uint256,bytes32,bytes32,uint64,address,address,address,uint256,address,"
    "uint256,uint256,uint256)",
    output_type=bytes4,
)
TRANSFER_FROM: constant(bytes4) = method_id(
    "transferFrom(address,address,uint256)", output_type=bytes4
)

admin: public(address)
relayer: public(address)
fee_recipient: public(address)
filled: public(HashMap[bytes32, uint64])
# By owner, then order hash: a cancel counts only for orders of the owner who made it.
cancelled: public(HashMap[address, HashMap[bytes32, bool]])
min_nonce: public(HashMap[address, uint256])
settled_words: HashMap[uint256, uint256]

DEPLOYED_CHAIN_ID: immutable(uint256)
DEPLOYED_DOMAIN_SEPARATOR: immutable(bytes32)


@deploy
def __init__(relayer: address, fee_recipient: address):
    self.admin = msg.sender
    self.relayer = relayer
    self.fee_recipient = fee_recipient
    DEPLOYED_CHAIN_ID = chain.id
    DEPLOYED_DOMAIN_SEPARATOR = self._separator()


@internal
@view
def _separator() -> bytes32:
    return keccak256(abi_encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self))


@internal
@view
def _domain_separator() -> bytes32:
    # Recomputed only on a fork that changed the chain id, so old signatures stop working.
    if chain.id == DEPLOYED_CHAIN_ID:
        return DEPLOYED_DOMAIN_SEPARATOR
    return self._separator()


@internal
@view
def _order_hash(order: Order) -> bytes32:
    struct_hash: bytes32 = keccak256(
        abi_encode(
            ORDER_TYPEHASH, order.owner, order.base, order.baseTokenId, order.quote,
            order.side, order.price, order.quantity, order.lotUnits, order.tickUnits,
            order.nonce, order.expiry, order.maxFeeBps,
        )
    )
    return self._typed_digest(struct_hash)


@internal
@view
def _typed_digest(struct_hash: bytes32) -> bytes32:
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@external
@view
def domain_separator() -> bytes32:
    return self._domain_separator()


@external
@view
def order_hash(order: Order) -> bytes32:
    """@notice The order's EIP-712 digest: the key of `filled` and `cancelled`."""
    return self._order_hash(order)


@external
@view
def is_settled(trade_id: uint256) -> bool:
    return self.settled_words[trade_id >> 8] & (1 << (trade_id & 255)) != 0


@internal
@pure
def _signed_by(digest: bytes32, signature: Bytes[65], owner: address) -> bool:
    if len(signature) != 65:
        return False
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if s > HALF_CURVE_ORDER or (v != 27 and v != 28):
        return False
    signer: address = ecrecover(digest, v, r, s)
    return signer != empty(address) and signer == owner


@internal
@view
def _order_reason(order: Order, order_hash: bytes32, quantity: uint64, fee: uint256,
                  quote_amount: uint256) -> uint8:
    """@dev The first reason `order` cannot take this fill, or 0; signatures are left last."""
    if block.timestamp > convert(order.expiry, uint256):
        return EXPIRED
    if order.nonce < self.min_nonce[order.owner]:
        return NONCE_BELOW_MINIMUM
    if self.cancelled[order.owner][order_hash]:
        return CANCELLED
    if convert(self.filled[order_hash], uint256) + convert(quantity, uint256) > convert(
        order.quantity, uint256
    ):
        return OVERFILL
    if fee > quote_amount:
        return FEE_OVER_MAX
    if fee * BPS > quote_amount * convert(order.maxFeeBps, uint256):
        return FEE_OVER_MAX
    return 0


@internal
@pure
def _orders_pair(trade: Trade) -> bool:
    buy: Order = trade.buy
    sell: Order = trade.sell
    if buy.side != BUY or sell.side != SELL or trade.quantity == 0:
        return False
    if buy.base != sell.base or buy.baseTokenId != sell.baseTokenId or buy.quote != sell.quote:
        return False
    if buy.lotUnits != sell.lotUnits or buy.tickUnits != sell.tickUnits:
        return False
    if buy.lotUnits == 0 or buy.lotUnits > MAX_UNITS or buy.tickUnits > MAX_UNITS:
        return False
    # An ERC-721 base moves one token: one lot of one unit.
    return buy.baseTokenId == 0 or (buy.lotUnits == 1 and trade.quantity == 1)


@internal
@view
def _skip_reason(trade: Trade, buy_hash: bytes32, sell_hash: bytes32) -> (uint8, bytes32):
    """@dev Why `trade` cannot settle and the order at fault (empty for the trade itself)."""
    if not self._orders_pair(trade):
        return ORDERS_MISMATCHED, empty(bytes32)
    if self.settled_words[trade.tradeId >> 8] & (1 << (trade.tradeId & 255)) != 0:
        return ALREADY_SETTLED, empty(bytes32)
    if trade.price > trade.buy.price:
        return PRICE_OUTSIDE_LIMIT, buy_hash
    if trade.price < trade.sell.price:
        return PRICE_OUTSIDE_LIMIT, sell_hash
    quote_amount: uint256 = self._quote_amount(trade)
    reason: uint8 = self._order_reason(
        trade.buy, buy_hash, trade.quantity, trade.buyFee, quote_amount
    )
    if reason != 0:
        return reason, buy_hash
    reason = self._order_reason(trade.sell, sell_hash, trade.quantity, trade.sellFee, quote_amount)
    if reason != 0:
        return reason, sell_hash
    if not self._signed_by(buy_hash, trade.buySignature, trade.buy.owner):
        return BAD_SIGNATURE, buy_hash
    if not self._signed_by(sell_hash, trade.sellSignature, trade.sell.owner):
        return BAD_SIGNATURE, sell_hash
    return 0, empty(bytes32)


@internal
@pure
def _quote_amount(trade: Trade) -> uint256:
    return (
        convert(trade.price, uint256) * convert(trade.quantity, uint256) * trade.buy.tickUnits
    )


@internal
def _execute(trade: Trade, buy_hash: bytes32, sell_hash: bytes32) -> uint8:
    """@dev Runs the transfers in a call to this contract, so a failure undoes them all."""
    quote_amount: uint256 = self._quote_amount(trade)
    calldata: Bytes[388] = abi_encode(
        trade.tradeId, buy_hash, sell_hash, trade.quantity, trade.buy.owner, trade.sell.owner,
        trade.buy.base, trade.buy.baseTokenId, trade.buy.quote,
        convert(trade.quantity, uint256) * trade.buy.lotUnits,
        quote_amount - trade.sellFee,
        trade.buyFee + trade.sellFee,
        method_id=EXECUTE_TRADE,
    )
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(self, calldata, max_outsize=32, revert_on_failure=False)
    if success:
        return 0
    if len(response) == 32:
        reason: uint256 = convert(response, uint256)
        if reason == convert(BUYER_TRANSFER_FAILED, uint256):
            return BUYER_TRANSFER_FAILED
        if reason == convert(SELLER_TRANSFER_FAILED, uint256):
            return SELLER_TRANSFER_FAILED
    return EXECUTION_FAILED


@external
@nonreentrant
def settle(trades: DynArray[Trade, MAX_BATCH]):
    """
    @notice Settles every valid trade of the batch; skips the others with their reasons.
    @dev Only the relayer may settle: it alone knows which matched trades the node journaled.
    """
    assert msg.sender == self.relayer, "only the relayer settles"
    index: uint256 = 0
    for trade: Trade in trades:
        buy_hash: bytes32 = self._order_hash(trade.buy)
        sell_hash: bytes32 = self._order_hash(trade.sell)
        reason: uint8 = 0
        at_fault: bytes32 = empty(bytes32)
        reason, at_fault = self._skip_reason(trade, buy_hash, sell_hash)
        if reason == 0:
            reason = self._execute(trade, buy_hash, sell_hash)
            if reason == BUYER_TRANSFER_FAILED:
                at_fault = buy_hash
            elif reason == SELLER_TRANSFER_FAILED:
                at_fault = sell_hash
        if reason == 0:
            log TradeSettled(
                trade_id=trade.tradeId, buy_hash=buy_hash, sell_hash=sell_hash,
                quantity=trade.quantity, price=trade.price,
            )
        else:
            log TradeSkipped(trade_id=trade.tradeId, index=index, reason=reason,
                             order_hash=at_fault)
        index += 1


@internal
def _pull(token: address, source: address, target: address, amount: uint256) -> bool:
    """@dev `transferFrom` (the same call for ERC-20 amounts and ERC-721 ids), caught: true
    only if the token has code, did not revert, and returned nothing or true."""
    if not token.is_contract:
        return False
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        token,
        abi_encode(source, target, amount, method_id=TRANSFER_FROM),
        max_outsize=32,
        revert_on_failure=False,
    )
    if not success:
        return False
    return len(response) == 0 or (len(response) == 32 and convert(response, uint256) == 1)


@external
def execute_trade(
    trade_id: uint256, buy_hash: bytes32, sell_hash: bytes32, quantity: uint64,
    buyer: address, seller: address, base: address, base_token_id: uint256, quote: address,
    base_amount: uint256, seller_receives: uint256, fee_amount: uint256,
):
    """
    @notice Internal to `settle`, external only so that a failure can be caught: records the
            fill, then moves the base to the buyer, the quote to the seller and the fees to
            the fee recipient; reverts with the reason code if any transfer fails.
    """
    assert msg.sender == self, "only settle executes trades"
    self.filled[buy_hash] += quantity
    self.filled[sell_hash] += quantity
    self.settled_words[trade_id >> 8] |= 1 << (trade_id & 255)
    base_value: uint256 = base_amount
    if base_token_id != 0:
        base_value = base_token_id
    if not self._pull(base, seller, buyer, base_value):
        raw_revert(abi_encode(convert(SELLER_TRANSFER_FAILED, uint256)))
    if not self._pull(quote, buyer, seller, seller_receives):
        raw_revert(abi_encode(convert(BUYER_TRANSFER_FAILED, uint256)))
    if fee_amount != 0 and not self._pull(quote, buyer, self.fee_recipient, fee_amount):
        raw_revert(abi_encode(convert(BUYER_TRANSFER_FAILED, uint256)))


@external
def cancel(order: Order):
    """@notice Cancels one order for good; only its owner may."""
    assert msg.sender == order.owner, "only the order's owner cancels it"
    order_hash: bytes32 = self._order_hash(order)
    self.cancelled[msg.sender][order_hash] = True
    log OrderCancelled(owner=msg.sender, order_hash=order_hash)


@external
def cancel_signed(owner: address, order_hash: bytes32, signature: Bytes[65]):
    """
    @notice Cancels `owner`'s order `order_hash` with the owner's signed EIP-712 `Cancel`, the
            one the node honours: anyone may bring it on chain (the relayer does).
    """
    struct_hash: bytes32 = keccak256(abi_encode(CANCEL_TYPEHASH, owner, order_hash))
    assert self._signed_by(self._typed_digest(struct_hash), signature, owner), "bad signature"
    self.cancelled[owner][order_hash] = True
    log OrderCancelled(owner=owner, order_hash=order_hash)


@internal
def _raise_min_nonce(owner: address, min_nonce: uint256):
    assert min_nonce > self.min_nonce[owner], "the minimum nonce only goes up"
    self.min_nonce[owner] = min_nonce
    log MinNonceRaised(owner=owner, min_nonce=min_nonce)


@external
def increment_min_nonce():
    """@notice Cancels every order of the sender whose nonce is the current minimum."""
    self._raise_min_nonce(msg.sender, self.min_nonce[msg.sender] + 1)


@external
def set_min_nonce(min_nonce: uint256):
    """@notice Cancels every order of the sender whose nonce is below `min_nonce`."""
    self._raise_min_nonce(msg.sender, min_nonce)


@external
def set_relayer(relayer: address):
    assert msg.sender == self.admin, "only the admin"
    self.relayer = relayer
    log RelayerChanged(relayer=relayer)


@external
def set_fee_recipient(fee_recipient: address):
    assert msg.sender == self.admin, "only the admin"
    self.fee_recipient = fee_recipient
    log FeeRecipientChanged(fee_recipient=fee_recipient)


@external
def set_admin(admin: address):
    assert msg.sender == self.admin, "only the admin"
    self.admin = admin
    log AdminChanged(admin=admin)
