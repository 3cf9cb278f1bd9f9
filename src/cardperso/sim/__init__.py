"""The edge where simulators meet real plumbing (never imported by the library's core).

* :mod:`~cardperso.sim.vpcd` - the bridge that serves virtual cards to pcscd as vpcd readers;
* :mod:`~cardperso.sim.pcscd` - a private pcscd and its reader entries for tests and demos;
* :mod:`~cardperso.sim.inprocess` - a transport to a virtual card in the same process;
* :mod:`~cardperso.sim.printer` - the card-printer simulator served on a pty;
* :mod:`~cardperso.sim.line` - a whole simulated line (printers, readers, virtual cards);
* :mod:`~cardperso.sim.bank_demo` - the two-stage bank card demo on in-process virtual cards.

The card models they serve are :mod:`cardperso.card` (sans-IO); the host side that talks to
them is :mod:`cardperso.chip`, over the same transports as real readers.
"""
