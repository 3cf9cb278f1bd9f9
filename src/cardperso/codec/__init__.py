"""Pure byte codecs: no I/O, no cryptography, ``bytes`` in and out.

* :mod:`~cardperso.codec.fields` - cn / n / an (ASCII, GBK) / b field encodings, ``split_gbk``.
* :mod:`~cardperso.codec.tlv` - BER-TLV (EMV, GlobalPlatform).
* :mod:`~cardperso.codec.simpletlv` - simple TLV (SSSE records).
* :mod:`~cardperso.codec.dgi` - EMV CPS DGI framing.
* :mod:`~cardperso.codec.apdu` - command / response APDUs, ISO 7816-4 cases 1-4 short and extended.
* :mod:`~cardperso.codec.status` - status words as a data table, ``describe`` and ``check``.
* :mod:`~cardperso.codec.numbers` - resident ID, card number, PAN, region and date validators.
* :mod:`~cardperso.codec.magstripe` - magnetic-stripe tracks.
"""
