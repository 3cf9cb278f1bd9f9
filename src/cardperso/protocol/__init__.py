"""Sans-IO card protocols: GlobalPlatform secure channels (host and card side) and STORE DATA.

* :mod:`cardperso.protocol.scp02`, :mod:`cardperso.protocol.scp03` - secure channels;
  both implement :class:`~cardperso.protocol.channel.SecureChannel` (host) and
  :class:`~cardperso.protocol.channel.CardSecureChannel` (card).
* :mod:`cardperso.protocol.base` - the session life cycle both protocols share (host and card).
* :mod:`cardperso.protocol.session` - the one session transition table.
* :mod:`cardperso.protocol.storedata` - STORE DATA building and card-side reassembly.
"""
