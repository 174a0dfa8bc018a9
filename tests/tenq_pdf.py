"""A 10-Q-like quarterly report as a real PDF (fpdf2), for benchmarks and tests that need SEC-filing shaped input.

It has what makes real filings hard for a demo: a cover page of check boxes and legal boilerplate, a table of
contents with dot leaders, financial tables whose units sit in the header ("In millions, except per share"),
narrative MD&A with the facts, risk factors, a forward-looking-statements notice and a signature block.
The company and every figure are invented (Northwind Circuits, Inc.); FACTS lists the ones a question can ask about.

    from tests.tenq_pdf import make_10q_pdf
    path = make_10q_pdf(tmp_path / "northwind-10q.pdf")
"""
from __future__ import annotations

from pathlib import Path

COMPANY = "Northwind Circuits, Inc."
QUARTER = "the quarter ended March 31, 2026"

# Figures as printed in the filing; tables are "In millions" so the unit lives only in the header.
FACTS = {
    "total revenue": "$13,507 million",
    "total revenue prior year": "$11,240 million",
    "data center revenue": "$9,870 million",
    "gaming revenue": "$2,215 million",
    "automotive revenue": "$1,422 million",
    "gross margin": "64.8%",
    "net income": "$3,118 million",
    "diluted earnings per share": "$1.27",
    "cash and equivalents": "$7,412 million",
    "research and development expense": "$2,046 million",
    "employees": "29,600",
    "chief executive officer": "Helena Marquez",
    "chief financial officer": "Daniel Okafor",
    "headquarters": "Santa Clara, California",
    "largest customer share": "14%",
    "share repurchase": "$1,500 million",
}

COVER = [
    "UNITED STATES",
    "SECURITIES AND EXCHANGE COMMISSION",
    "Washington, D.C. 20549",
    "FORM 10-Q",
    "[X] QUARTERLY REPORT PURSUANT TO SECTION 13 OR 15(d) OF THE SECURITIES EXCHANGE ACT OF 1934",
    "For the quarterly period ended March 31, 2026",
    "OR",
    "[ ] TRANSITION REPORT PURSUANT TO SECTION 13 OR 15(d) OF THE SECURITIES EXCHANGE ACT OF 1934",
    "Commission file number: 0-23985",
    "NORTHWIND CIRCUITS, INC.",
    "(Exact name of registrant as specified in its charter)",
    "Delaware 94-3177549",
    "(State or other jurisdiction of incorporation or organization) (I.R.S. Employer Identification No.)",
    "2788 San Tomas Expressway, Santa Clara, California 95051",
    "(Address of principal executive offices) (Zip Code)",
    "(408) 486-2000",
    "(Registrant's telephone number, including area code)",
    "Securities registered pursuant to Section 12(b) of the Act:",
    "Title of each class Trading Symbol(s) Name of each exchange on which registered",
    "Common Stock, $0.001 par value per share NWCI The Nasdaq Global Select Market",
    "Indicate by check mark whether the registrant (1) has filed all reports required to be filed by Section 13 or 15(d) "
    "of the Securities Exchange Act of 1934 during the preceding 12 months (or for such shorter period that the registrant "
    "was required to file such reports), and (2) has been subject to such filing requirements for the past 90 days. Yes [X] No [ ]",
    "Indicate by check mark whether the registrant has submitted electronically every Interactive Data File required to be "
    "submitted pursuant to Rule 405 of Regulation S-T (232.405 of this chapter) during the preceding 12 months. Yes [X] No [ ]",
    "Indicate by check mark whether the registrant is a large accelerated filer, an accelerated filer, a non-accelerated filer, "
    "a smaller reporting company, or an emerging growth company. See the definitions of \"large accelerated filer,\" "
    "\"accelerated filer,\" \"smaller reporting company,\" and \"emerging growth company\" in Rule 12b-2 of the Exchange Act.",
    "Large accelerated filer [X] Accelerated filer [ ] Non-accelerated filer [ ] Smaller reporting company [ ] Emerging growth company [ ]",
    "Indicate by check mark whether the registrant is a shell company (as defined in Rule 12b-2 of the Exchange Act). Yes [ ] No [X]",
    "The number of shares of the registrant's common stock outstanding as of April 18, 2026 was 2,452,118,306.",
]

TOC = [
    ("PART I. FINANCIAL INFORMATION", ""),
    ("Item 1. Financial Statements (unaudited)", "3"),
    ("Condensed Consolidated Statements of Income", "3"),
    ("Condensed Consolidated Balance Sheets", "4"),
    ("Item 2. Management's Discussion and Analysis of Financial Condition and Results of Operations", "5"),
    ("Item 3. Quantitative and Qualitative Disclosures About Market Risk", "7"),
    ("Item 4. Controls and Procedures", "7"),
    ("PART II. OTHER INFORMATION", ""),
    ("Item 1. Legal Proceedings", "8"),
    ("Item 1A. Risk Factors", "8"),
    ("Item 2. Unregistered Sales of Equity Securities and Use of Proceeds", "9"),
    ("Item 6. Exhibits", "10"),
    ("Signatures", "10"),
]

INCOME = (
    "Condensed Consolidated Statements of Income (In millions, except per share data) (Unaudited)",
    ["", "Three Months Ended Mar 31, 2026", "Three Months Ended Mar 31, 2025"],
    [
        ["Revenue", "13,507", "11,240"],
        ["Cost of revenue", "4,755", "4,271"],
        ["Gross profit", "8,752", "6,969"],
        ["Research and development", "2,046", "1,838"],
        ["Sales, general and administrative", "1,104", "1,012"],
        ["Total operating expenses", "3,150", "2,850"],
        ["Operating income", "5,602", "4,119"],
        ["Other income (expense), net", "118", "64"],
        ["Income before income tax", "5,720", "4,183"],
        ["Income tax expense", "2,602", "1,704"],
        ["Net income", "3,118", "2,479"],
        ["Net income per share: Basic", "$1.29", "$1.02"],
        ["Net income per share: Diluted", "$1.27", "$1.00"],
    ],
)

BALANCE = (
    "Condensed Consolidated Balance Sheets (In millions) (Unaudited)",
    ["", "Mar 31, 2026", "Dec 31, 2025"],
    [
        ["Cash and cash equivalents", "7,412", "6,980"],
        ["Marketable securities", "12,306", "11,850"],
        ["Accounts receivable, net", "5,874", "5,102"],
        ["Inventories", "3,960", "4,215"],
        ["Total current assets", "30,118", "28,640"],
        ["Property and equipment, net", "4,502", "4,317"],
        ["Total assets", "48,906", "46,211"],
        ["Total current liabilities", "9,840", "9,316"],
        ["Long-term debt", "8,459", "8,455"],
        ["Total shareholders' equity", "27,714", "25,960"],
    ],
)

SEGMENTS = (
    "Revenue by Market Platform (In millions)",
    ["Market platform", "Q1 2026", "Q1 2025", "Change"],
    [
        ["Data Center", "9,870", "7,692", "28%"],
        ["Gaming", "2,215", "2,306", "(4)%"],
        ["Automotive", "1,422", "1,242", "14%"],
        ["Total", "13,507", "11,240", "20%"],
    ],
)

FORWARD_LOOKING = (
    "Forward-Looking Statements. This Quarterly Report on Form 10-Q contains forward-looking statements within the meaning of "
    "Section 27A of the Securities Act of 1933, as amended, and Section 21E of the Securities Exchange Act of 1934, as amended, "
    "which are subject to the safe harbor created by those sections. All statements other than statements of historical fact "
    "are statements that could be deemed forward-looking statements. Words such as \"anticipate,\" \"believe,\" \"estimate,\" "
    "\"expect,\" \"intend,\" \"may,\" \"plan,\" \"project,\" \"should\" and \"will\" identify forward-looking statements. "
    "Actual results could differ materially from those projected. We undertake no obligation to update any forward-looking "
    "statement, except as required by law. Readers are cautioned not to place undue reliance on these statements."
)

MDNA = [
    "Overview. Northwind Circuits, Inc. designs accelerated computing chips and systems for data centers, gaming and "
    "automotive customers. The company is headquartered in Santa Clara, California, and employed approximately 29,600 "
    "people at the end of the quarter. Helena Marquez is the Chief Executive Officer.",
    "Results of operations. Revenue for the first quarter of fiscal 2026 was $13,507 million, up 20% from $11,240 million "
    "a year earlier. Data Center revenue was $9,870 million, up 28%, driven by shipments of the Aurora accelerator to cloud "
    "service providers. Gaming revenue was $2,215 million, down 4%, as channel partners reduced inventory. Automotive revenue "
    "was $1,422 million, up 14%, on new driver-assistance design wins.",
    "Gross margin was 64.8%, compared with 62.0% a year earlier, reflecting a higher mix of Data Center products. Research "
    "and development expense was $2,046 million, up 11%, mainly for engineering headcount and compute for chip design. "
    "Net income was $3,118 million and diluted earnings per share were $1.27, compared with $1.00 a year earlier.",
    "Liquidity and capital resources. Cash and cash equivalents were $7,412 million at March 31, 2026, and marketable "
    "securities were $12,306 million. During the quarter we repurchased $1,500 million of common stock under the program "
    "authorized by the Board of Directors. We believe our cash and marketable securities will be sufficient to meet our "
    "operating requirements for at least the next twelve months.",
    "Customer concentration. One cloud service provider accounted for 14% of total revenue in the quarter, primarily "
    "attributable to the Data Center platform. No other customer exceeded 10% of revenue.",
]

MARKET_RISK = [
    "Item 3. Quantitative and Qualitative Disclosures About Market Risk. Our exposure to market risk has not changed "
    "materially since December 31, 2025. A hypothetical 10% change in foreign exchange rates would not have a material "
    "impact on our results of operations.",
    "Item 4. Controls and Procedures. Based on their evaluation as of the end of the period covered by this report, our "
    "Chief Executive Officer and Chief Financial Officer concluded that our disclosure controls and procedures were "
    "effective at the reasonable assurance level. There was no change in our internal control over financial reporting "
    "during the quarter that has materially affected, or is reasonably likely to materially affect, it.",
]

LEGAL = (
    "Item 1. Legal Proceedings. Please see Note 12 of the Notes to Condensed Consolidated Financial Statements for a "
    "discussion of our legal proceedings, which is incorporated herein by reference."
)

RISKS = [
    "Item 1A. Risk Factors. Investing in our common stock involves risk. The following risks could harm our business.",
    "We depend on a single foundry partner in Taiwan to manufacture our Aurora accelerators. Any disruption at that "
    "foundry, including from natural disasters or geopolitical tension, could delay shipments and reduce our revenue.",
    "Export controls on advanced computing products may restrict our sales to customers in China, which represented 9% "
    "of revenue in the quarter. New restrictions could require licenses that may not be granted.",
    "Demand for data center products is concentrated among a few cloud service providers. If one of them reduces its "
    "purchases, our revenue and gross margin could decline significantly.",
    "Our gaming business is cyclical and exposed to channel inventory corrections, which reduced Gaming revenue by 4% "
    "this quarter and could recur.",
    "We face intense competition from larger semiconductor companies and from customers designing their own chips, "
    "which could lower our prices and market share.",
]

EQUITY = (
    "Item 2. Unregistered Sales of Equity Securities and Use of Proceeds. In the first quarter we repurchased 11.2 million "
    "shares of common stock for $1,500 million. As of March 31, 2026, $8,300 million remained available under the repurchase "
    "program authorized by our Board of Directors."
)

EXHIBITS = [
    ("31.1", "Certification of Chief Executive Officer pursuant to Rule 13a-14(a) of the Securities Exchange Act of 1934"),
    ("31.2", "Certification of Chief Financial Officer pursuant to Rule 13a-14(a) of the Securities Exchange Act of 1934"),
    ("32.1", "Certification of Chief Executive Officer pursuant to 18 U.S.C. Section 1350"),
    ("32.2", "Certification of Chief Financial Officer pursuant to 18 U.S.C. Section 1350"),
    ("101.INS", "Inline XBRL Instance Document"),
    ("104", "Cover Page Interactive Data File (formatted as Inline XBRL and contained in Exhibit 101)"),
]

SIGNATURES = [
    "SIGNATURES",
    "Pursuant to the requirements of the Securities Exchange Act of 1934, the registrant has duly caused this report to be "
    "signed on its behalf by the undersigned thereunto duly authorized.",
    "NORTHWIND CIRCUITS, INC.",
    "Date: April 24, 2026 By: /s/ Helena Marquez",
    "Helena Marquez",
    "President and Chief Executive Officer",
    "Date: April 24, 2026 By: /s/ Daniel Okafor",
    "Daniel Okafor",
    "Executive Vice President and Chief Financial Officer (Principal Financial Officer)",
]


def _table(pdf, title: str, header: list[str], rows: list[list[str]]) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.multi_cell(0, 6, title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.set_font("Helvetica", size=9)
    widths = (70,) + (110 // (len(header) - 1),) * (len(header) - 1)
    with pdf.table(col_widths=widths, text_align=("LEFT",) + ("RIGHT",) * (len(header) - 1), first_row_as_headings=True) as table:
        for values in [header, *rows]:
            row = table.row()
            for value in values:
                row.cell(value)
    pdf.ln(4)


def _paragraphs(pdf, paragraphs: list[str], size: int = 10) -> None:
    pdf.set_font("Helvetica", size=size)
    for text in paragraphs:
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)


def make_10q_pdf(path: str | Path) -> Path:
    """Write the 10-Q-like report (10 pages) to path and return it. Deterministic: same bytes apart from the timestamp."""
    from fpdf import FPDF

    path = Path(path)
    pdf = FPDF(format="letter")
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_title(f"{COMPANY} Form 10-Q")

    pdf.add_page()  # 1: cover page
    pdf.set_font("Helvetica", "B", 12)
    for line in COVER[:4]:
        pdf.cell(0, 7, line, align="C", new_x="LMARGIN", new_y="NEXT")
    _paragraphs(pdf, COVER[4:], size=8)

    pdf.add_page()  # 2: table of contents (dot leaders, page numbers)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "NORTHWIND CIRCUITS, INC. TABLE OF CONTENTS", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for entry, page in TOC:
        dots = "." * max(3, 95 - len(entry)) if page else ""
        pdf.cell(0, 6, f"{entry} {dots} {page}".rstrip(), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _paragraphs(pdf, [FORWARD_LOOKING], size=8)

    pdf.add_page()  # 3-4: financial statements
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "PART I. FINANCIAL INFORMATION - Item 1. Financial Statements", new_x="LMARGIN", new_y="NEXT")
    _table(pdf, *INCOME)
    pdf.add_page()
    _table(pdf, *BALANCE)
    _paragraphs(pdf, ["See accompanying Notes to Condensed Consolidated Financial Statements."], size=8)

    pdf.add_page()  # 5-6: MD&A
    pdf.set_font("Helvetica", "B", 11)
    pdf.multi_cell(0, 7, "Item 2. Management's Discussion and Analysis of Financial Condition and Results of Operations", new_x="LMARGIN", new_y="NEXT")
    _paragraphs(pdf, MDNA[:3])
    _table(pdf, *SEGMENTS)
    pdf.add_page()
    _paragraphs(pdf, MDNA[3:])

    pdf.add_page()  # 7: market risk, controls
    _paragraphs(pdf, MARKET_RISK)

    pdf.add_page()  # 8-9: part II, legal, risk factors
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "PART II. OTHER INFORMATION", new_x="LMARGIN", new_y="NEXT")
    _paragraphs(pdf, [LEGAL, *RISKS[:3]])
    pdf.add_page()
    _paragraphs(pdf, [*RISKS[3:], EQUITY])

    pdf.add_page()  # 10: exhibits and signature block
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Item 6. Exhibits", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    for number, title in EXHIBITS:
        pdf.multi_cell(0, 5, f"{number} {title}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    _paragraphs(pdf, SIGNATURES, size=9)

    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


if __name__ == "__main__":
    import sys

    print(make_10q_pdf(sys.argv[1] if len(sys.argv) > 1 else "northwind-10q.pdf"))
