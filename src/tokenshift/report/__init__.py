"""What a person reads: tables in the terminal (rich, ``tables.py``) and one self-contained HTML page
with plots (``--report FILE.html``: ``pages.py`` builds it from the result objects, ``plots.py`` draws
the SVG with matplotlib, ``document.py`` renders and writes it).

    from tokenshift.report import evaluate_page, write_page
    write_page(evaluate_page(results), "report.html")

matplotlib is imported only when a page is built, so the CLI and the tables stay fast to import.
"""

from .document import Page as Page
from .document import Plot as Plot
from .document import Section as Section
from .document import Table as Table
from .document import check_report_path as check_report_path
from .document import write_page as write_page
from .pages import demo_page as demo_page
from .pages import evaluate_page as evaluate_page
from .pages import heal_page as heal_page
from .pages import measure_page as measure_page
from .tables import bpb_table as bpb_table
from .tables import comparison_table as comparison_table
from .tables import ensemble_table as ensemble_table
from .tables import language_cost_table as language_cost_table
from .tables import measurement_table as measurement_table
from .tables import premium_table as premium_table
from .tables import story_table as story_table
from .tables import transplant_table as transplant_table
