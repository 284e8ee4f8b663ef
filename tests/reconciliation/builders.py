"""Statement fixtures, generated: camt.053 XML, MT940 text, bank CSV rows, settlement CSV.

No data files are committed; each test writes what it needs into its tmp_path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CAMT_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.{v}"


@dataclass
class Tx:
    """One camt TxDtls."""

    amount: str | None = None
    indicator: str | None = None
    e2e: str | None = None
    ref: str | None = None
    ustrd: str | None = None
    debtor: str | None = None
    creditor_ref: str | None = None


@dataclass
class Entry:
    """One camt Ntry."""

    amount: str
    indicator: str = "CRDT"
    ref: str = "FT0001"
    status: str = "BOOK"
    booking: str | None = "2025-10-14"
    booking_dttm: str | None = None
    value: str | None = "2025-10-14"
    reversal: bool = False
    txs: list[Tx] = field(default_factory=list)
    batch: tuple[str, str | None] | None = None  # (NbOfTxs, TtlAmt)
    batch_id: str | None = None
    info: str | None = None
    currency: str = "VND"


def _amt(amount: str, ccy: str = "VND") -> str:
    return f'<Amt Ccy="{ccy}">{amount}</Amt>'


def _tx_xml(tx: Tx, version: int) -> str:
    refs = ""
    if tx.ref or tx.e2e:
        refs = "<Refs>"
        refs += f"<AcctSvcrRef>{tx.ref}</AcctSvcrRef>" if tx.ref else ""
        refs += f"<EndToEndId>{tx.e2e}</EndToEndId>" if tx.e2e else ""
        refs += "</Refs>"
    amount = ""
    if tx.amount is not None:
        if version >= 3:
            amount = _amt(tx.amount) + (f"<CdtDbtInd>{tx.indicator}</CdtDbtInd>" if tx.indicator else "")
        else:  # V02 has no TxDtls/Amt, only AmtDtls (reconciliation.md §2.1)
            amount = f"<AmtDtls><TxAmt>{_amt(tx.amount)}</TxAmt></AmtDtls>"
    party = ""
    if tx.debtor:
        name = f"<Nm>{tx.debtor}</Nm>"
        party = f"<RltdPties><Dbtr>{f'<Pty>{name}</Pty>' if version >= 8 else name}</Dbtr></RltdPties>"
    rmt = ""
    if tx.ustrd or tx.creditor_ref:
        rmt = "<RmtInf>"
        rmt += f"<Ustrd>{tx.ustrd}</Ustrd>" if tx.ustrd else ""
        if tx.creditor_ref:
            rmt += f"<Strd><CdtrRefInf><Ref>{tx.creditor_ref}</Ref></CdtrRefInf></Strd>"
        rmt += "</RmtInf>"
    return f"<TxDtls>{refs}{amount}{party}{rmt}</TxDtls>"


def _entry_xml(entry: Entry, n: int, version: int) -> str:
    status = f"<Sts><Cd>{entry.status}</Cd></Sts>" if version >= 6 else f"<Sts>{entry.status}</Sts>"
    booking = ""
    if entry.booking_dttm:
        booking = f"<BookgDt><DtTm>{entry.booking_dttm}</DtTm></BookgDt>"
    elif entry.booking:
        booking = f"<BookgDt><Dt>{entry.booking}</Dt></BookgDt>"
    value = f"<ValDt><Dt>{entry.value}</Dt></ValDt>" if entry.value else ""
    details = ""
    if entry.txs or entry.batch:
        details = "<NtryDtls>"
        if entry.batch:
            count, total = entry.batch
            details += "<Btch>"
            details += f"<PmtInfId>{entry.batch_id}</PmtInfId>" if entry.batch_id else ""
            details += f"<NbOfTxs>{count}</NbOfTxs>"
            details += (
                f"{_amt(total).replace('Amt', 'TtlAmt')}<CdtDbtInd>{entry.indicator}</CdtDbtInd>"
                if total
                else ""
            )
            details += "</Btch>"
        details += "".join(_tx_xml(tx, version) for tx in entry.txs)
        details += "</NtryDtls>"
    return (
        f"<Ntry><NtryRef>{n}</NtryRef>{_amt(entry.amount, entry.currency)}"
        + f"<CdtDbtInd>{entry.indicator}</CdtDbtInd>"
        + ("<RvslInd>true</RvslInd>" if entry.reversal else "")
        + f"{status}{booking}{value}<AcctSvcrRef>{entry.ref}</AcctSvcrRef>"
        + "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn></BkTxCd>"
        + details
        + (f"<AddtlNtryInf>{entry.info}</AddtlNtryInf>" if entry.info else "")
        + "</Ntry>"
    )


def _balance_xml(code: str, amount: int, day: str) -> str:
    indicator = "CRDT" if amount >= 0 else "DBIT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>{_amt(str(abs(amount)))}"
        f"<CdtDbtInd>{indicator}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"
    )


def camt_statement(
    entries: Sequence[Entry],
    *,
    version: int = 8,
    opening: int = 125_000_000,
    closing: int | None = None,
    stmt_id: str = "0071000123456-20251014",
    account: str = "0071000123456",
    opening_code: str = "OPBD",
) -> str:
    """One ``<Stmt>``; ``closing`` defaults to opening + Σ booked entries (a consistent statement)."""
    if closing is None:
        closing = opening
        for e in entries:
            if e.status == "BOOK":
                closing += int(e.amount) if e.indicator == "CRDT" else -int(e.amount)
    seq = "<ElctrncSeqNb>287</ElctrncSeqNb>"
    return (
        f"<Stmt><Id>{stmt_id}</Id>{seq}<CreDtTm>2025-10-15T01:30:00+07:00</CreDtTm>"
        "<FrToDt><FrDtTm>2025-10-14T00:00:00+07:00</FrDtTm><ToDtTm>2025-10-14T23:59:59+07:00</ToDtTm></FrToDt>"
        f"<Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>VND</Ccy></Acct>"
        + _balance_xml(opening_code, opening, "2025-10-13")
        + _balance_xml("CLBD", closing, "2025-10-14")
        + "".join(_entry_xml(e, n, version) for n, e in enumerate(entries, start=1))
        + "</Stmt>"
    )


def camt_document(statements: Sequence[str], *, version: int = 8, prolog: str = "") -> str:
    ns = CAMT_NS.format(v=f"{version:02d}")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}'
        f'<Document xmlns="{ns}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>STMT-20251014-0001</MsgId><CreDtTm>2025-10-15T01:30:00+07:00</CreDtTm></GrpHdr>"
        + "".join(statements)
        + "</BkToCstmrStmt></Document>\n"
    )


def camt(
    entries: Sequence[Entry], *, version: int = 8, opening: int = 125_000_000, closing: int | None = None
) -> str:
    statement = camt_statement(entries, version=version, opening=opening, closing=closing)
    return camt_document([statement], version=version)


def write(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


SETTLEMENT_HEADER = (
    "provider,provider_txn_id,reference,amount,fee,net,status,transacted_at,settlement_date,batch_id"
)


def settlement_row(
    txn: str,
    ref: str,
    amount: int,
    fee: int = 0,
    *,
    net: int | None = None,
    status: str = "success",
    at: str = "2025-10-14T10:15:00+07:00",
    settled: str = "2025-10-15",
    batch: str = "B20251015",
    provider: str = "vnpay",
) -> str:
    net = amount - fee if net is None else net
    return f"{provider},{txn},{ref},{amount},{fee},{net},{status},{at},{settled},{batch}"


#: The MT940 example of reconciliation.md §2.2 (opening + Σ lines = closing).
DOC_EXAMPLE = """\
:20:STMT20251014
:25:0071000123456
:28C:00287/001
:60F:C251013VND125000000,
:61:2510141014C150000,NTRFHS2025-000123//FT2528712345
:86:LE PHI HO SO HS2025-000123 NGUYEN VAN A
:61:2510141014D3300,NCHGNONREF//FT2528712399
:86:PHI DICH VU THANG 10
:62F:C251014VND125146700,
"""
