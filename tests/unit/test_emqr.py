"""EMVCo / VietQR payloads: the published payloads of providers.md §7 item 6, §4.2, building and parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.emqr import (
    InvalidPayload,
    ascii_text,
    build,
    build_vietqr,
    crc16_ccitt_false,
    crc_hex,
    parse,
    parse_tlv,
    parse_vietqr,
)

# providers.md §7 item 6: every published payload, in the order listed there (twelve).
NAPAS_STATIC_ACCOUNT = (
    "00020101021138570010A00000072701270006970403011200110123456780208QRIBFTTA53037045802VN6304F4E5"
)
NAPAS_DYNAMIC_ACCOUNT = (
    "00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA530370454061800005802VN"
    "62340107NPS68690819thanh toan don hang63042E2E"
)
NAPAS_STATIC_CARD = (
    "00020101021138600010A00000072701300006970403011697040311012345670208QRIBFTTC53037045802VN63044F52"
)
SUBIZ_STATIC = "00020101021138540010A00000072701240006970423011000999999990208QRIBFTTA53037045802VN6304CBB4"
SUBIZ_TEST_TEXT = (
    "00020101021238570010A00000072701270006970422011300234579234420208QRIBFTTA53037045405401235802VN"
    "62200816test text string6304D9C6"
)
SUBIZ_CHUYEN_KHOAN = (
    "00020101021238570010A00000072701270006970422011300234579234420208QRIBFTTA53037045405401235802VN"
    "62160812chuyen khoan6304722F"
)
SUBIZ_README = (
    "00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA530370454061200005802VN"
    "62170813ung ho lu lut6304C15C"
)
XUANNGHIA_STATIC = (
    "00020101021138530010A0000007270123000697041601092576788590208QRIBFTTA53037045802VN6304AE9F"
)
XUANNGHIA_10000 = (
    "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA53037045405100005802VN"
    "62150811Chuyen tien630453E6"
)
XUANNGHIA_1000 = (
    "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN"
    "62150811Chuyen tien6304BBB8"
)
VNPAY_QR = (
    "00020101021126280010A0000007750110010531314453037045408210900005802VN5910CELLPHONES"
    "62600312CPSHN ONLINE0517021908061613127850705ONLHN0810CellphoneS63047685"
)
ZALOPAY_QR = (
    "00020101021226520010vn.zalopay0203001010627000503173916458628013369138620010A00000072701320006970454"
    "011899ZP23237O000015410208QRIBFTTA5204739953037045405690005802VN622108173916458628013369163043895"
)

PUBLISHED = (
    NAPAS_STATIC_ACCOUNT,
    NAPAS_DYNAMIC_ACCOUNT,
    NAPAS_STATIC_CARD,
    SUBIZ_STATIC,
    SUBIZ_TEST_TEXT,
    SUBIZ_CHUYEN_KHOAN,
    SUBIZ_README,
    XUANNGHIA_STATIC,
    XUANNGHIA_10000,
    XUANNGHIA_1000,
    VNPAY_QR,
    ZALOPAY_QR,
)
PUBLISHED_CRCS = (
    "F4E5",
    "2E2E",
    "4F52",
    "CBB4",
    "D9C6",
    "722F",
    "C15C",
    "AE9F",
    "53E6",
    "BBB8",
    "7685",
    "3895",
)

# §7 caution: the last subiz/vietqr README example, malformed (no GUID) and with a CRC that does not check.
CAUTION_EXAMPLE = (
    "0002010102113838000697042201120023457923440208QRIBFTTA530370454061800005802VN"
    "62160814ung ho bao lut6304E69F"
)


def test_all_twelve_published_payloads_are_listed() -> None:
    assert len(PUBLISHED) == 12
    assert len(set(PUBLISHED)) == 12
    assert tuple(p[-4:] for p in PUBLISHED) == PUBLISHED_CRCS


def test_crc16_ccitt_false_check_value() -> None:
    # The catalogued check value of CRC-16/CCITT-FALSE over "123456789".
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize("payload", PUBLISHED, ids=PUBLISHED_CRCS)
def test_published_crc_verifies(payload: str) -> None:
    body, crc = payload[:-4], payload[-4:]
    assert body.endswith("6304")
    assert crc_hex(body) == crc
    assert f"{crc16_ccitt_false(body.encode()):04X}" == crc


@pytest.mark.parametrize("payload", PUBLISHED, ids=PUBLISHED_CRCS)
def test_published_payload_round_trips(payload: str) -> None:
    fields = parse(payload)
    assert all(tag != "63" for tag, _ in fields)
    assert fields[0] == ("00", "01")
    assert build(fields) == payload


def test_bbb5_variant_is_rejected() -> None:
    bad = XUANNGHIA_1000[:-4] + "BBB5"
    with pytest.raises(InvalidPayload, match="CRC mismatch"):
        parse(bad)
    with pytest.raises(InvalidPayload):
        parse_vietqr(bad)


def test_caution_example_is_not_valid() -> None:
    with pytest.raises(InvalidPayload):
        parse(CAUTION_EXAMPLE)
    # Both of its faults, separately: the CRC does not check out, and tag 62 declares 16 characters
    # where 18 follow, so the TLV run is broken.
    assert crc_hex(CAUTION_EXAMPLE[:-4]) != "E69F"
    with pytest.raises(InvalidPayload):
        parse_tlv(CAUTION_EXAMPLE[:-8])


def test_worked_example_4_2_decomposes_as_documented() -> None:
    assert parse(NAPAS_DYNAMIC_ACCOUNT) == [
        ("00", "01"),
        ("01", "12"),
        ("38", "0010A00000072701270006970403011300110123456780208QRIBFTTA"),
        ("53", "704"),
        ("54", "180000"),
        ("58", "VN"),
        ("62", "0107NPS68690819thanh toan don hang"),
    ]
    napas = parse_tlv(parse(NAPAS_DYNAMIC_ACCOUNT)[2][1])
    assert napas == [("00", "A000000727"), ("01", "000697040301130011012345678"), ("02", "QRIBFTTA")]
    assert parse_tlv(napas[1][1]) == [("00", "970403"), ("01", "0011012345678")]
    assert parse_tlv("0107NPS68690819thanh toan don hang") == [
        ("01", "NPS6869"),
        ("08", "thanh toan don hang"),
    ]
    qr = parse_vietqr(NAPAS_DYNAMIC_ACCOUNT)
    assert (qr.bin, qr.account, qr.service) == ("970403", "0011012345678", "QRIBFTTA")
    assert (qr.amount, qr.bill_number, qr.purpose) == (180000, "NPS6869", "thanh toan don hang")
    assert qr.dynamic is True
    assert (qr.currency, qr.country, qr.crc) == ("704", "VN", "2E2E")


def test_build_vietqr_reproduces_the_worked_example() -> None:
    built = build_vietqr("970403", "0011012345678", 180000, "thanh toan don hang", bill_number="NPS6869")
    assert built == NAPAS_DYNAMIC_ACCOUNT


@pytest.mark.parametrize(
    ("payload", "bank_bin", "account", "amount", "purpose", "service"),
    [
        (NAPAS_STATIC_CARD, "970403", "9704031101234567", None, None, "QRIBFTTC"),
        (SUBIZ_STATIC, "970423", "0099999999", None, None, "QRIBFTTA"),
        (SUBIZ_TEST_TEXT, "970422", "0023457923442", 40123, "test text string", "QRIBFTTA"),
        (SUBIZ_CHUYEN_KHOAN, "970422", "0023457923442", 40123, "chuyen khoan", "QRIBFTTA"),
        (SUBIZ_README, "970415", "0011001932418", 120000, "ung ho lu lut", "QRIBFTTA"),
        (XUANNGHIA_STATIC, "970416", "257678859", None, None, "QRIBFTTA"),
        (XUANNGHIA_10000, "970416", "257678859", 10000, "Chuyen tien", "QRIBFTTA"),
        (XUANNGHIA_1000, "970416", "257678859", 1000, "Chuyen tien", "QRIBFTTA"),
    ],
)
def test_build_vietqr_reproduces_published_payloads(
    payload: str, bank_bin: str, account: str, amount: int | None, purpose: str | None, service: str
) -> None:
    assert build_vietqr(bank_bin, account, amount, purpose, service=service) == payload
    qr = parse_vietqr(payload)
    assert (qr.bin, qr.account, qr.amount, qr.purpose, qr.service) == (
        bank_bin,
        account,
        amount,
        purpose,
        service,
    )
    assert qr.dynamic is (amount is not None)


def test_subiz_readme_builds_from_vietnamese_text() -> None:
    # subiz/vietqr strips the diacritics of "ủng hộ lũ lụt" before encoding (§4.1: ASCII only).
    assert build_vietqr("970415", "0011001932418", 120000, "ủng hộ lũ lụt") == SUBIZ_README


def test_zalopay_qr_is_a_vietqr_to_bvbank() -> None:
    # §4.1: MoMo/ZaloPay "QR đa năng" are VietQR codes to BVBank (970454) virtual accounts.
    qr = parse_vietqr(ZALOPAY_QR)
    assert (qr.bin, qr.account, qr.amount) == ("970454", "99ZP23237O00001541", 69000)
    assert qr.purpose == "39164586280133691"
    assert dict(qr.fields)["52"] == "7399"
    assert parse_tlv(dict(qr.fields)["26"])[0] == ("00", "vn.zalopay")


def test_vnpay_qr_parses_but_is_not_a_vietqr() -> None:
    # §4.1: VNPAY-QR merchant codes use tag 26 with GUID A000000775 instead of 38.
    fields = dict(parse(VNPAY_QR))
    assert parse_tlv(fields["26"]) == [("00", "A000000775"), ("01", "0105313144")]
    assert fields["59"] == "CELLPHONES"
    assert dict(parse_tlv(fields["62"]))["08"] == "CellphoneS"
    with pytest.raises(InvalidPayload, match="tag 38"):
        parse_vietqr(VNPAY_QR)


def test_napas_static_account_example_has_a_broken_beneficiary_template() -> None:
    # The NAPAS spec example (as published, CRC F4E5) declares 12 characters for a 13-digit account, so
    # tag 38/01 is not well-formed TLV; binhnguyenduc/vietqr-ts notes it and uses length 13 (CRC 9E6F).
    assert build(parse(NAPAS_STATIC_ACCOUNT)) == NAPAS_STATIC_ACCOUNT
    with pytest.raises(InvalidPayload, match="38/01"):
        parse_vietqr(NAPAS_STATIC_ACCOUNT)
    corrected = build_vietqr("970403", "0011012345678", None, None)
    assert corrected == NAPAS_STATIC_ACCOUNT.replace("01120011", "01130011")[:-4] + "9E6F"
    assert parse_vietqr(corrected).account == "0011012345678"


# ---- malformed payloads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "6304FFFF",  # no payload format indicator
        NAPAS_DYNAMIC_ACCOUNT[:-8],  # no CRC object
        NAPAS_DYNAMIC_ACCOUNT[:-1],  # CRC cut short
        NAPAS_DYNAMIC_ACCOUNT + "00",  # trailing bytes after the CRC
        NAPAS_DYNAMIC_ACCOUNT.replace("5406180000", "5406190000"),  # amount changed, CRC kept
        NAPAS_DYNAMIC_ACCOUNT.replace("5406180000", "54O6180000"),  # non-numeric length
        NAPAS_DYNAMIC_ACCOUNT[:-4] + "2E2G",  # CRC not hex
    ],
)
def test_malformed_payloads_are_rejected(payload: str) -> None:
    with pytest.raises(InvalidPayload):
        parse(payload)


def test_lowercase_crc_is_accepted() -> None:
    assert parse(SUBIZ_CHUYEN_KHOAN[:-4] + "722f") == parse(SUBIZ_CHUYEN_KHOAN)


def test_duplicate_tag_is_rejected() -> None:
    # A second amount must never be smuggled in behind the first.
    payload = build([("00", "01"), ("54", "1000"), ("54", "9000")])
    with pytest.raises(InvalidPayload, match="twice"):
        parse(payload)


def test_broken_template_is_rejected_even_with_a_good_crc() -> None:
    payload = build([("00", "01"), ("62", "0899abc")])
    with pytest.raises(InvalidPayload, match="template 62"):
        parse(payload)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([("00", "01"), ("5", "x")], "two digits"),
        ([("00", "01"), ("59", "x" * 100)], "at most 99"),
        ([("00", "01"), ("63", "ABCD")], "tag 63"),
    ],
)
def test_build_refuses_bad_fields(fields: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(fields)


def test_parse_vietqr_refuses_non_vnd_and_bad_amounts() -> None:
    usd = build([("00", "01"), ("01", "12"), ("38", parse(SUBIZ_STATIC)[2][1]), ("53", "840"), ("58", "VN")])
    with pytest.raises(InvalidPayload, match="VND"):
        parse_vietqr(usd)
    for amount in ("1000.50", "0", "1,000"):
        payload = build(
            [("00", "01"), ("01", "12"), ("38", parse(SUBIZ_STATIC)[2][1]), ("53", "704"), ("54", amount)]
        )
        with pytest.raises(InvalidPayload, match="tag 54"):
            parse_vietqr(payload)


def test_parse_vietqr_refuses_another_guid() -> None:
    other = "0010A000000775" + parse(SUBIZ_STATIC)[2][1][14:]
    with pytest.raises(InvalidPayload, match="GUID"):
        parse_vietqr(build([("00", "01"), ("38", other), ("53", "704")]))


# ---- build_vietqr arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bin": "97040"}, "BIN"),
        ({"bin": "97040A"}, "BIN"),
        ({"account": ""}, "account"),
        ({"account": "1" * 20}, "account"),
        ({"account": "0011-0123"}, "account"),
        ({"amount": 0}, "positive integer"),
        ({"amount": -5}, "positive integer"),
        ({"amount": 1000.0}, "positive integer"),
        ({"amount": True}, "positive integer"),
        ({"amount": 10**13}, "13 digits"),
        ({"purpose": "x" * 26}, "at most 25"),
        ({"service": "QRPUSH"}, "service code"),
    ],
)
def test_build_vietqr_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"bin": "970436", "account": "0011001234567", "amount": 58000, "purpose": "x"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_vietqr(**args)  # type: ignore[arg-type]


def test_build_vietqr_static_and_purpose_handling() -> None:
    static = parse_vietqr(build_vietqr("970436", "0011001234567", None, None))
    assert (static.dynamic, static.amount, static.purpose) == (False, None, None)
    # A purpose with nothing printable left is omitted rather than sent empty.
    assert "62" not in dict(parse(build_vietqr("970436", "0011001234567", 1, "\u200b\t")))
    assert parse_vietqr(build_vietqr("970436", "1", 10**12, "Lệ phí  hồ sơ Đăng ký")).purpose == (
        "Le phi ho so Dang ky"
    )


def test_ascii_text() -> None:
    assert ascii_text("  Nộp lệ phí\tĐăng ký  kết hôn ") == "Nop le phi Dang ky ket hon"
    assert ascii_text("GW261125ABC123 – “phí”") == "GW261125ABC123 phi"


# ---- property: build -> parse round trip ---------------------------------------------------------------

_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@given(
    bank_bin=st.from_regex(r"\A[0-9]{6}\Z"),
    account=st.from_regex(r"\A[0-9]{1,19}\Z"),
    amount=st.none() | st.integers(min_value=1, max_value=10**12),
    purpose=st.none() | st.text(_PRINTABLE, max_size=25),
)
def test_vietqr_round_trip(bank_bin: str, account: str, amount: int | None, purpose: str | None) -> None:
    payload = build_vietqr(bank_bin, account, amount, purpose)
    assert build(parse(payload)) == payload
    qr = parse_vietqr(payload)
    assert (qr.bin, qr.account, qr.amount) == (bank_bin, account, amount)
    assert qr.dynamic is (amount is not None)
    expected = ascii_text(purpose) if purpose is not None else ""
    assert qr.purpose == (expected or None)
