"""GlobalPlatform key loading on published vectors: the PUT KEY data field (issue 18).

GlobalPlatformPro ``TestPlaintextKeys`` (martinpaljak/GlobalPlatformPro,
library/src/test/java/pro/javacard/gp/test/TestPlaintextKeys.java):

* ``testKeyEncryption_SCP02``: the key 404142..4F encrypted under the SCP02 session DEK of the
  static keys 404142..4F at sequence counter 0000 is EFBEE6C6D99D7B70BDE9D7E927F020AF;
* ``testSessionKeys_SCP01``: the 3DES check value of 404142..4F is 8BAF47.

GP Card Specification 2.3 section 11.8.2.3 (PUT KEY data field): KVN, then per key the key
type (80 = DES), the length of the encrypted key (10), the encrypted key, the length of the
check value (03) and the check value.
"""

from __future__ import annotations

from cardperso.chip.gp import put_key_command
from cardperso.crypto import gp
from cardperso.protocol.scp02 import Scp02Card, Scp02Host

H = bytes.fromhex
GP_KEY = H("404142434445464748494A4B4C4D4E4F")
GP_KEYS = gp.StaticKeys(GP_KEY, GP_KEY, GP_KEY)
ENCRYPTED = "EFBEE6C6D99D7B70BDE9D7E927F020AF"  # GlobalPlatformPro testKeyEncryption_SCP02
KCV = "8BAF47"  # GlobalPlatformPro testSessionKeys_SCP01 (static DEK check value)


def _host_at_sequence_0000() -> Scp02Host:
    card = Scp02Card(GP_KEYS, kvn=0xFF, seq_counter=0)
    host = Scp02Host(GP_KEYS, 0x01)
    answer = card.external_authenticate(
        host.process_initialize_update_response(card.initialize_update(host.initialize_update()))
    )
    host.process_external_authenticate_response(answer)
    assert host.session is not None and host.session.sequence_counter == H("0000")
    return host


def test_put_key_data_field_globalplatformpro() -> None:
    host = _host_at_sequence_0000()
    command = put_key_command(GP_KEYS, 0x30, host.encrypt_dgi_data)
    key_block = "8010" + ENCRYPTED + "03" + KCV
    assert command == H("80D8008143" + "30" + key_block * 3 + "00")


def test_put_key_replacing_a_set_names_it_in_p1() -> None:
    host = _host_at_sequence_0000()
    command = put_key_command(GP_KEYS, 0x31, host.encrypt_dgi_data, replace_kvn=0x30)
    assert command[:5] == H("80D8308143") and command[5] == 0x31
    assert command[6:28] == H("8010" + ENCRYPTED + "03" + KCV)
