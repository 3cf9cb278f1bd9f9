"""Batch data preparation: cardholder records in, a protected personalization file out.

Modules, in the order a record meets them (see ``docs/prep.md``):

* :mod:`~cardperso.prep.input` - streaming CSV / JSON Lines input, cut on record boundaries;
* :mod:`~cardperso.prep.validate` - every validation rule, record by record (the precise reasons);
* :mod:`~cardperso.prep.cards` - the typed chunk: records as columns, validated with array masks;
* :mod:`~cardperso.prep.keys` - per-chunk key work (one key-store call per master key);
* :mod:`~cardperso.crypto.kcvbatch` (in the crypto package) - vectorized 3DES check values for DGI 9000;
* :mod:`~cardperso.prep.build` - profile templates compiled once, filled for a whole chunk
  (segments laid out by :mod:`cardperso.codec.columns`);
* :mod:`~cardperso.prep.oda` - offline data authentication DGIs from the ICC key pool;
* :mod:`~cardperso.prep.container` - sealing, MACs, writing, verifying and reading perso files
  (layout: :mod:`cardperso.layouts.persofile`);
* :mod:`~cardperso.prep.dedup` - duplicate detection across the batch;
* :mod:`~cardperso.prep.pipeline` - the batch run (worker processes, rejects, totals);
* :mod:`~cardperso.prep.rejects` - the rejects file;
* :mod:`~cardperso.prep.synth` - synthetic batches for tests, examples and benchmarks.
"""
