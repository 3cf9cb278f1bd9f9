"""Batch data preparation: cardholder records in, a protected personalization file out.

Modules, in the order a record meets them (see ``docs/prep.md``):

* :mod:`~cardperso.prep.input` - streaming CSV / JSON Lines input, cut on record boundaries;
* :mod:`~cardperso.prep.validate` - every validation rule (fast on good records);
* :mod:`~cardperso.prep.keys` - per-chunk key work (one key-store call per master key);
* :mod:`~cardperso.crypto.kcvbatch` (in the crypto package) - bitsliced 3DES check values for DGI 9000;
* :mod:`~cardperso.prep.templates` - precompiled SSSE and PBOC DGI templates;
* :mod:`~cardperso.prep.container` - sealing, MACs, writing, verifying and reading perso files
  (layout: :mod:`cardperso.layouts.persofile`);
* :mod:`~cardperso.prep.dedup` - duplicate detection across the batch;
* :mod:`~cardperso.prep.pipeline` - the batch run (worker processes, rejects, totals);
* :mod:`~cardperso.prep.rejects` - the rejects file;
* :mod:`~cardperso.prep.synth` - synthetic batches for tests, examples and benchmarks.
"""
