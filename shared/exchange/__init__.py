"""The exchange layer shared by every service: typed errors, typed market and order data, the
SDK gateway (timeouts, error mapping, read retries; every request signed with exchange time from
``clock.ExchangeClock`` over one keep-alive session, orders optionally under a signing deadline),
request weights (``weights``), the order lookup within the exchange's history limits
(``history.OrderLookup``) and the keyless ``PublicMarketData`` client.

Keyed clients live with the service allowed to hold the key: ``services.scanner.account``
(view-only) and ``services.executor.trade_client`` (trade); the account reads both share are
``AccountReads`` (``shared.exchange.account``).
"""
