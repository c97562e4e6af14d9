"""Chemical formulae, atomic masses, crystal densities and isotopic abundances.

Plain numbers, no arrays: what :mod:`pfibsims.quantification` needs to turn a
standard's formula into its nominal Li content, and a concentration in atomic
percent into atoms per cm^3.

* formulae are parsed by :func:`xraydb.chemparse` (a recursive-descent parser,
  no ``eval``; element symbols checked against the periodic table), atomic
  masses come from :func:`xraydb.atomic_mass`;
* :data:`CELLS`: the unit cells of a few battery phases, from which
  :func:`theoretical_density` computes the X-ray density ``Z M / (N_A V)``;
* :data:`NATURAL_ABUNDANCE`: isotopic abundances (atom %) for the delta
  notation of :func:`pfibsims.isotopes.isotope_ratio`.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path
from typing import Any

from .errors import PfibsimsError

__all__ = [
    "CELLS",
    "NATURAL_ABUNDANCE",
    "atom_fractions",
    "atoms_per_cm3",
    "element_symbol",
    "isotopologue",
    "mean_atomic_mass",
    "natural_ratio",
    "nuclide_label",
    "theoretical_density",
]

#: Avogadro's number (exact, SI 2019), 1/mol.
AVOGADRO = 6.02214076e23

#: Representative isotopic composition, atom percent (IUPAC CIAAW 2009 table, Berglund and Wieser,
#: Pure Appl. Chem. 83 (2011) 397; lithium: 6Li 7.59 %, 7Li 92.41 %), of the elements that SIMS
#: isotope images commonly hold (NanoSIMS: 12C/13C, 14N/15N via CN-, 16O/18O, 32S/34S).
NATURAL_ABUNDANCE = {
    "H": {1: 99.9885, 2: 0.0115},
    "Li": {6: 7.59, 7: 92.41},
    "B": {10: 19.9, 11: 80.1},
    "C": {12: 98.93, 13: 1.07},
    "N": {14: 99.636, 15: 0.364},
    "O": {16: 99.757, 17: 0.038, 18: 0.205},
    "Si": {28: 92.223, 29: 4.685, 30: 3.092},
    "S": {32: 94.99, 33: 0.75, 34: 4.25, 36: 0.01},
}

#: Unit cells (formula units per cell ``Z``; lattice parameters in angstrom) of
#: phases used as standards. LiCoO2: R-3m, hexagonal setting, a = 2.8156,
#: c = 14.0542 (Akimoto, Gotoh, Oosawa, J. Solid State Chem. 141 (1998) 298);
#: garnet LLZTO Li6.4La3Zr1.4Ta0.6O12: Ia-3d, a = 12.94 (cubic Ta-doped LLZO,
#: e.g. Li, Han, Goodenough, J. Am. Chem. Soc. 134 (2012) 14130); LLZO
#: Li7La3Zr2O12: cubic, a = 12.968; Al2O3: corundum, a = 4.7589, c = 12.991.
CELLS: dict[str, dict[str, Any]] = {
    "LiCoO2": {"Z": 3, "system": "hexagonal", "a": 2.8156, "c": 14.0542},
    "Li6.4La3Zr1.4Ta0.6O12": {"Z": 8, "system": "cubic", "a": 12.94},
    "Li7La3Zr2O12": {"Z": 8, "system": "cubic", "a": 12.968},
    "Al2O3": {"Z": 6, "system": "hexagonal", "a": 4.7589, "c": 12.991},
}


#: The private module name of xraydb's formula parser loaded alone (:func:`_chemparse`).
_PARSER = "pfibsims._xraydb_chemparser"


def _chemparse() -> Any:
    """:func:`xraydb.chemparse`, loaded without the rest of xraydb while xraydb is not imported.

    The parser is a module of its own (``xraydb/chemparser.py``, the standard library only), but
    ``import xraydb`` also loads SQLAlchemy and the X-ray database (0.5-1 s), which parsing a formula
    does not need. The module is loaded from its file under a private name (importlib's "importing a
    source file directly"); from xraydb itself when that is imported already or the file is not there.
    """
    if _PARSER not in sys.modules and "xraydb" not in sys.modules:
        spec = importlib.util.find_spec("xraydb")  # finds the package without importing it
        path = Path(spec.origin).with_name("chemparser.py") if spec is not None and spec.origin else None
        parser = importlib.util.spec_from_file_location(_PARSER, path) if path is not None and path.is_file() else None
        if parser is not None and parser.loader is not None:
            module = importlib.util.module_from_spec(parser)
            parser.loader.exec_module(module)
            sys.modules[_PARSER] = module
    if _PARSER in sys.modules:
        return sys.modules[_PARSER].chemparse
    import xraydb

    return xraydb.chemparse



#: Separators of the parts of an adduct (a hydrate ``LiOH·H2O``): a middle dot, bullet, ``*``, or a full
#: stop before an element, a parenthesis or a space (a full stop between digits is a decimal point).
_ADDUCT = re.compile(r"[\u00b7\u2022\u2219\u22c5*]|\.(?=[A-Z(\s])")

#: An adduct part: an optional multiplier (``5H2O``) and a formula.
_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)?\s*(.*?)\s*", re.DOTALL)


def _composition(formula: Any, name: str) -> dict[str, float]:
    """Element -> atoms per formula unit; an adduct's parts (``CuSO4·5H2O``) are added, times their multipliers."""
    if not isinstance(formula, str) or not formula.strip():
        raise PfibsimsError(f"{name}: expected a chemical formula such as 'LiCoO2', got {formula!r}")
    if re.search(r"\d\s+[\d.]", formula):  # the parser skips spaces: 'CuSO4 5H2O' would be CuSO45 H2O
        raise PfibsimsError(f"{name}: expected a chemical formula such as 'LiCoO2', got {formula!r}, with a space between "
                            "two numbers; write a hydrate as 'CuSO4\u00b75H2O', 'CuSO4*5H2O' or 'CuSO4(H2O)5'")
    counts: dict[str, float] = {}
    for part in _ADDUCT.split(formula):
        k, body = _PART.fullmatch(part).groups()
        try:
            if not body:
                raise ValueError("an empty part of an adduct")
            parsed = _chemparse()(body)
        except (ValueError, RecursionError, AssertionError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise PfibsimsError(f"{name}: expected a chemical formula such as 'LiCoO2', got {formula!r} ({reason})") from None
        for el, n in parsed.items():
            counts[el] = counts.get(el, 0.0) + float(k or 1) * float(n)
    parsed = counts
    counts = {el: float(n) for el, n in parsed.items() if float(n) != 0}
    if not counts or any(not math.isfinite(n) or n < 0 for n in counts.values()):
        raise PfibsimsError(f"{name}: expected a formula with positive element counts, got {formula!r} -> {parsed}")
    return counts


def element_symbol(symbol: Any, name: str = "element") -> str:
    """``symbol`` checked as a chemical element's symbol (``'Li'``, not ``'Li6'`` nor ``'Xx'``); an error naming ``name``."""
    ok = isinstance(symbol, str) and re.fullmatch(r"[A-Z][a-z]{0,2}", symbol) is not None
    try:
        ok = ok and _chemparse()(symbol) == {symbol: 1}
    except ValueError:
        ok = False
    if not ok:
        isotope = isinstance(symbol, str) and re.fullmatch(r"\d+[A-Z][a-z]?|[A-Z][a-z]?\d+", symbol.strip())
        hint = f" (an isotope: give its element, {re.sub(r'[0-9]', '', symbol.strip())!r})" if isotope else ""
        raise PfibsimsError(f"{name}: expected an element symbol such as 'Li', got {symbol!r:.60}{hint}")
    return symbol


#: One nuclide of an isotope or molecular-ion label, mass first: ``12C``, ``16O2`` (a count only when no
#: element follows its digits, so ``12C14N`` is 12C and 14N).
_NUCLIDE = re.compile(r"(\d{1,3})([A-Z][a-z]?)(?:(\d+)(?!\d*[A-Z]))?")


def isotopologue(label: Any) -> dict[str, dict[int, int]] | None:
    """Element -> {mass number: atoms} of a label such as ``'6Li'``, ``'12C 14N'``, ``'12C15N-'`` or ``'16O2'``;
    None when ``label`` is not such a label (no mass numbers, e.g. ``'SE'``, ``'C2'``).

    Examples
    --------
    >>> isotopologue("12C 15N-"), isotopologue("16O2"), isotopologue("Zr_La")
    ({'C': {12: 1}, 'N': {15: 1}}, {'O': {16: 2}}, None)
    """
    if not isinstance(label, str):
        return None
    out: dict[str, dict[int, int]] = {}
    for token in label.strip().rstrip("+-").split():
        if not _NUCLIDE.sub("", token) == "" or not token:
            return None
        for mass, el, k in _NUCLIDE.findall(token):
            out.setdefault(el, {})
            out[el][int(mass)] = out[el].get(int(mass), 0) + int(k or 1)
    return out or None


def nuclide_label(attrs: dict[str, Any]) -> str | None:
    """A channel's isotope label from its attrs: ``isotope`` (``'6Li'``, ``'12C 15N'``), else ``mass`` + ``element``.

    Examples
    --------
    >>> nuclide_label({"element": "Li", "mass": 7.0}), nuclide_label({"isotope": "12C 14N", "mass": 26})
    ('7Li', '12C 14N')
    """
    if attrs.get("isotope"):
        return str(attrs["isotope"])
    mass, el = attrs.get("mass"), attrs.get("element")
    whole = isinstance(mass, (int, float)) and not isinstance(mass, bool) and math.isfinite(mass) and float(mass).is_integer()
    return f"{int(mass)}{el}" if whole and isinstance(el, str) else None


def _abundance(comp: dict[str, dict[int, int]]) -> float:
    """Natural abundance of an isotopologue (relative): per element, the multinomial count of its atoms' isotopes
    times the product of their abundances."""
    total = 1.0
    for el, masses in comp.items():
        total *= math.factorial(sum(masses.values()))
        for mass, k in masses.items():
            total *= (NATURAL_ABUNDANCE[el][mass] / 100.0) ** k / math.factorial(k)
    return total


def natural_ratio(label_a: Any, label_b: Any, names: tuple[str, str] = ("a", "b")) -> float | None:
    """The natural abundance ratio a/b of two isotopes or isotopologues (:data:`NATURAL_ABUNDANCE`).

    None when a label is not one (no mass numbers), when they are not isotopologues of one molecule (other
    elements, or other numbers of atoms), or when an element has no table. A PfibsimsError naming
    ``names`` when a label holds an unknown element or a mass its element's table lacks.

    Examples
    --------
    >>> round(natural_ratio("6Li", "7Li"), 5), round(natural_ratio("16O 18O", "16O2") / (0.205 / 99.757), 6)
    (0.08213, 2.0)
    """
    comps = isotopologue(label_a), isotopologue(label_b)
    if comps[0] is None or comps[1] is None:
        return None
    for comp, label, name in zip(comps, (label_a, label_b), names, strict=True):
        for el, masses in comp.items():
            element_symbol(el, f"{name}: isotope {label!r}")
            table = NATURAL_ABUNDANCE.get(el, {})
            if table and (bad := sorted(m for m in masses if m not in table)):
                raise PfibsimsError(f"{name}: isotope {label!r}: natural='auto' knows {el} at masses {sorted(table)} "
                                    f"(IUPAC 2009), not {bad}; give natural= the reference ratio {names[0]}/{names[1]}, or None")
    atoms = [{el: sum(m.values()) for el, m in c.items()} for c in comps]
    if atoms[0] != atoms[1] or any(el not in NATURAL_ABUNDANCE for el in atoms[0]):
        return None
    return _abundance(comps[0]) / _abundance(comps[1])


def atom_fractions(formula: str, *, name: str = "formula") -> dict[str, float]:
    """Atom fraction of each element of a chemical formula.

    Parameters
    ----------
    formula : str
        E.g. ``"Li6.4La3Zr1.4Ta0.6O12"``; fractional counts and parentheses
        (``"Ca3(PO4)2"``) are allowed, and hydrates (adducts) as
        ``"LiOH·H2O"``, ``"CuSO4*5H2O"`` or ``"LiOH.H2O"`` (a full stop
        between two digits is a decimal point: ``"CuSO4.5H2O"`` is
        CuSO4.5 H2O, write ``"CuSO4·5H2O"``).
    name : str
        The argument's name in error messages.

    Returns
    -------
    dict
        Element symbol -> atoms of that element per atom of the formula
        (the values sum to 1).

    Raises
    ------
    PfibsimsError
        When the formula does not parse or has no atoms.

    Examples
    --------
    >>> f = atom_fractions("Li6.4La3Zr1.4Ta0.6O12")
    >>> round(f["Li"], 6), round(6.4 / 23.4, 6)
    (0.273504, 0.273504)
    >>> atom_fractions("LiCoO2")["Li"]
    0.25
    """
    counts = _composition(formula, name)
    total = sum(counts.values())
    return {el: n / total for el, n in counts.items()}


def _mass(counts: dict[str, float]) -> float:
    """``sum n_i M_i`` in g/mol (``counts``: element -> number of atoms or atom fraction)."""
    import xraydb

    return sum(n * float(xraydb.atomic_mass(el)) for el, n in counts.items())


def mean_atomic_mass(formula: str, *, name: str = "formula") -> float:
    """Mean mass of an atom of ``formula``, g/mol (``sum x_i M_i``, ``x`` atom fractions).

    Examples
    --------
    >>> round(mean_atomic_mass("LiCoO2") * 4, 2)  # the molar mass of LiCoO2
    97.87
    """
    return _mass(atom_fractions(formula, name=name))


def theoretical_density(formula: str) -> float:
    """X-ray density ``Z M / (N_A V)`` (g/cm^3) of a phase in :data:`CELLS`.

    Raises
    ------
    PfibsimsError
        When the formula has no cell in the table (give the density instead).

    Examples
    --------
    >>> round(theoretical_density("LiCoO2"), 2)
    5.05
    """
    counts = _composition(formula, "formula")
    cell = next((c for name, c in CELLS.items() if _composition(name, "formula") == counts), None)  # 'CoLiO2' too
    if cell is None:
        raise PfibsimsError(
            f"densities: no density known for {formula!r} (the table has {sorted(CELLS)}); "
            f"give it, e.g. densities={{'phase': '5.05 g/cm^3'}}"
        )
    a = cell["a"]
    volume = a**3 if cell["system"] == "cubic" else math.sqrt(3) / 2 * a * a * cell["c"]  # angstrom^3
    return cell["Z"] * _mass(counts) / (AVOGADRO * volume * 1e-24)


def atoms_per_cm3(formula: str, density: float) -> float:
    """Atoms per cm^3 of a phase of ``formula`` at ``density`` (g/cm^3).

    Examples
    --------
    >>> f"{atoms_per_cm3('LiCoO2', 5.05):.3e}"
    '1.243e+23'
    """
    return density * AVOGADRO / mean_atomic_mass(formula)
