"""The Alpaca adapter: its REST client, its option, stock and trading websockets, its wire decoders and its error
and rate-limit rules. Nothing outside this package knows an Alpaca path or field name."""
