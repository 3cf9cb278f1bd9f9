"""The host side of every chip conversation, sans-IO (used by the line and the bank).

* :mod:`~cardperso.chip.transport` - the ``transmit(bytes) -> bytes`` shape every reader
  adapter has, and the one loop that drives a flow (a generator of command APDUs) over it;
* :mod:`~cardperso.chip.gp` - the GlobalPlatform client: SELECT, GET DATA, the secure channel
  (SCP02 / SCP03 from :mod:`cardperso.protocol`), PUT KEY, INSTALL, STORE DATA, SET STATUS;
* :mod:`~cardperso.chip.model` - what a chip step takes and returns (plan, card data, result);
* :mod:`~cardperso.chip.script` - the personalization of a GP chip, built from the above;
* :mod:`~cardperso.chip.plan` - a profile and a perso-file record turned into that plan;
* :mod:`~cardperso.chip.verify` - the read-back verifiers (SSSE records, PBOC records + ARQC).

Nothing here owns a reader: a station or a bank terminal drives a flow with
:func:`~cardperso.chip.transport.drive` over its transport.
"""
