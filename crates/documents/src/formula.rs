//! Spreadsheet formulas: the small, Excel-compatible subset we evaluate so every formula
//! cell is written with its computed result (a file opened in a viewer that does not
//! recalculate shows the right number, never 0).
//!
//! Supported: numbers, cell references (`B2`, `$B$2`), `+ - * /`, parentheses, unary minus,
//! and `SUM`, `AVERAGE`, `MIN`, `MAX`, `COUNT` over ranges (`B2:B10`) and values. References
//! must stay inside the sheet being written; other sheets and other functions are refused
//! with a message saying what is supported. This module does no I/O.

use std::collections::HashMap;

/// Longest formula, in characters.
pub const MAX_FORMULA_CHARS: usize = 1000;
/// Deepest nesting of formulas referring to formulas (guards the stack).
pub const MAX_FORMULA_DEPTH: usize = 64;

/// A cell position, 0-based (row 0 is the header row).
pub type CellPos = (usize, usize);

/// A parsed formula expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal number.
    Number(f64),
    /// A reference to one cell.
    Cell(CellPos),
    /// A rectangular range (only inside function arguments).
    Range(CellPos, CellPos),
    /// `-x`.
    Neg(Box<Expr>),
    /// `a op b`.
    Binary(Box<Expr>, char, Box<Expr>),
    /// `FUNC(args)`.
    Call(Function, Vec<Expr>),
}

/// The functions we evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Sum of numbers.
    Sum,
    /// Mean of numbers.
    Average,
    /// Smallest number.
    Min,
    /// Largest number.
    Max,
    /// How many numbers.
    Count,
}

/// The size of the sheet a formula lives in: references must fall inside it.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Rows including the header row.
    pub rows: usize,
    /// Columns.
    pub columns: usize,
}

/// Column letters for a 0-based index (`0` → `A`, `26` → `AA`).
pub fn column_letters(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// `A1` notation for a 0-based position.
pub fn cell_name((row, column): CellPos) -> String {
    format!("{}{}", column_letters(column), row + 1)
}

/// Parses `formula` (with its leading `=`), checking every reference against `bounds`.
pub fn parse(formula: &str, bounds: Bounds) -> Result<Expr, String> {
    if formula.chars().count() > MAX_FORMULA_CHARS {
        return Err(format!("the formula is longer than {MAX_FORMULA_CHARS} characters"));
    }
    let body = formula
        .strip_prefix('=')
        .ok_or_else(|| "a formula starts with '='".to_owned())?;
    let mut parser = Parser {
        chars: body.chars().collect(),
        at: 0,
        bounds,
    };
    let expr = parser.expr()?;
    parser.skip_spaces();
    if parser.at < parser.chars.len() {
        return Err(format!(
            "unexpected {:?} at position {}; supported: numbers, cell references like B2, + - * /, parentheses and SUM/AVERAGE/MIN/MAX/COUNT over ranges like B2:B10",
            parser.chars[parser.at],
            parser.at + 2
        ));
    }
    if matches!(expr, Expr::Range(..)) {
        return Err("a range like B2:B10 must be inside a function, e.g. =SUM(B2:B10)".into());
    }
    Ok(expr)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    bounds: Bounds,
}

impl Parser {
    fn skip_spaces(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_spaces();
        self.chars.get(self.at).copied()
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.at += 1;
            let right = self.term()?;
            left = Expr::Binary(Box::new(left), op, Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.factor()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.at += 1;
            let right = self.factor()?;
            left = Expr::Binary(Box::new(left), op, Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, String> {
        match self.peek() {
            None => Err("the formula ends too early".into()),
            Some('-') => {
                self.at += 1;
                Ok(Expr::Neg(Box::new(self.factor()?)))
            }
            Some('+') => {
                self.at += 1;
                self.factor()
            }
            Some('(') => {
                self.at += 1;
                let inner = self.expr()?;
                if self.peek() != Some(')') {
                    return Err("a '(' is not closed".into());
                }
                self.at += 1;
                Ok(inner)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == '$' => self.word(),
            Some(c) => Err(format!(
                "unexpected {c:?}; supported: numbers, cell references like B2, + - * /, parentheses and SUM/AVERAGE/MIN/MAX/COUNT"
            )),
        }
    }

    fn number(&mut self) -> Result<Expr, String> {
        let start = self.at;
        while self.chars.get(self.at).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        text.parse::<f64>()
            .map(Expr::Number)
            .map_err(|_| format!("{text:?} is not a number"))
    }

    fn word(&mut self) -> Result<Expr, String> {
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '_' | '.'))
        {
            self.at += 1;
        }
        let word: String = self.chars[start..self.at].iter().collect();
        if self.chars.get(self.at) == Some(&'!') {
            return Err(format!(
                "{word}!… refers to another sheet; formulas may only refer to cells of their own sheet"
            ));
        }
        if self.peek() == Some('(') {
            let function = match word.to_ascii_uppercase().as_str() {
                "SUM" => Function::Sum,
                "AVERAGE" => Function::Average,
                "MIN" => Function::Min,
                "MAX" => Function::Max,
                "COUNT" => Function::Count,
                other => {
                    return Err(format!(
                        "the function {other} is not supported; use SUM, AVERAGE, MIN, MAX or COUNT, or arithmetic on cells"
                    ));
                }
            };
            self.at += 1;
            let mut args = Vec::new();
            if self.peek() != Some(')') {
                loop {
                    args.push(self.argument()?);
                    match self.peek() {
                        Some(',') => self.at += 1,
                        Some(')') => break,
                        _ => return Err(format!("{word}( … is not closed with ')'")),
                    }
                }
            }
            self.at += 1;
            if args.is_empty() {
                return Err(format!("{word}() needs at least one argument"));
            }
            return Ok(Expr::Call(function, args));
        }
        let cell = self.reference(&word)?;
        Ok(Expr::Cell(cell))
    }

    fn argument(&mut self) -> Result<Expr, String> {
        let first = self.expr()?;
        if self.peek() == Some(':') {
            self.at += 1;
            let Expr::Cell(from) = first else {
                return Err("a range must go from one cell to another, like B2:B10".into());
            };
            let end = self.factor()?;
            let Expr::Cell(to) = end else {
                return Err("a range must go from one cell to another, like B2:B10".into());
            };
            let top_left = (from.0.min(to.0), from.1.min(to.1));
            let bottom_right = (from.0.max(to.0), from.1.max(to.1));
            return Ok(Expr::Range(top_left, bottom_right));
        }
        Ok(first)
    }

    fn reference(&self, word: &str) -> Result<CellPos, String> {
        let clean: String = word.chars().filter(|c| *c != '$').collect();
        let letters: String = clean.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        let digits = &clean[letters.len()..];
        if letters.is_empty() || digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{word:?} is not a cell reference (like B2) or a supported function (SUM, AVERAGE, MIN, MAX, COUNT)"
            ));
        }
        let mut column = 0usize;
        for c in letters.to_ascii_uppercase().bytes() {
            column = column.saturating_mul(26).saturating_add(usize::from(c - b'A' + 1));
        }
        let column = column - 1;
        let row: usize = digits
            .parse()
            .map_err(|_| format!("{word:?} has no valid row number"))?;
        if row == 0 {
            return Err(format!("{word}: rows start at 1"));
        }
        let row = row - 1;
        if column >= self.bounds.columns || row >= self.bounds.rows {
            return Err(format!(
                "{word} is outside the sheet, which spans A1:{} (row 1 is the header); refer only to cells of this sheet",
                cell_name((self.bounds.rows - 1, self.bounds.columns.saturating_sub(1)))
            ));
        }
        Ok((row, column))
    }
}

/// What a referenced cell holds, as the evaluator sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum CellValue {
    /// Nothing.
    Empty,
    /// A number (dates are not numbers here).
    Number(f64),
    /// Text, a date or anything else that is not a number.
    Text,
    /// Another formula, evaluated on demand.
    Formula(Expr),
}

/// Evaluates formulas of one sheet, following references to other formula cells (with
/// cycle detection and memoisation).
pub struct Evaluator<'a> {
    lookup: &'a dyn Fn(CellPos) -> CellValue,
    memo: HashMap<CellPos, f64>,
    visiting: Vec<CellPos>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator reading cells through `lookup`.
    pub fn new(lookup: &'a dyn Fn(CellPos) -> CellValue) -> Self {
        Evaluator {
            lookup,
            memo: HashMap::new(),
            visiting: Vec::new(),
        }
    }

    /// The value of the formula in cell `at` (whose expression is `expr`).
    pub fn evaluate_cell(&mut self, at: CellPos, expr: &Expr) -> Result<f64, String> {
        if let Some(value) = self.memo.get(&at) {
            return Ok(*value);
        }
        if self.visiting.contains(&at) {
            return Err(format!("{} refers to itself (a circular reference)", cell_name(at)));
        }
        if self.visiting.len() >= MAX_FORMULA_DEPTH {
            return Err(format!(
                "formulas refer to formulas more than {MAX_FORMULA_DEPTH} levels deep"
            ));
        }
        self.visiting.push(at);
        let value = self.eval(expr);
        self.visiting.pop();
        let value = value?;
        if !value.is_finite() {
            return Err(format!("{} evaluates to a non-finite number", cell_name(at)));
        }
        self.memo.insert(at, value);
        Ok(value)
    }

    fn cell_number(&mut self, at: CellPos) -> Result<Option<f64>, String> {
        match (self.lookup)(at) {
            CellValue::Empty => Ok(None),
            CellValue::Number(n) => Ok(Some(n)),
            CellValue::Text => Err(format!("{} is not a number", cell_name(at))),
            CellValue::Formula(expr) => self.evaluate_cell(at, &expr).map(Some),
        }
    }

    fn eval(&mut self, expr: &Expr) -> Result<f64, String> {
        match expr {
            Expr::Number(n) => Ok(*n),
            Expr::Cell(at) => Ok(self.cell_number(*at)?.unwrap_or(0.0)),
            Expr::Range(..) => Err("a range must be inside a function".into()),
            Expr::Neg(inner) => Ok(-self.eval(inner)?),
            Expr::Binary(a, op, b) => {
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                match op {
                    '+' => Ok(a + b),
                    '-' => Ok(a - b),
                    '*' => Ok(a * b),
                    _ if b == 0.0 => Err("division by zero".into()),
                    _ => Ok(a / b),
                }
            }
            Expr::Call(function, args) => {
                let mut numbers = Vec::new();
                for arg in args {
                    match arg {
                        Expr::Range(from, to) => {
                            for row in from.0..=to.0 {
                                for column in from.1..=to.1 {
                                    // Like Excel, functions over ranges skip text and blanks.
                                    match (self.lookup)((row, column)) {
                                        CellValue::Number(n) => numbers.push(n),
                                        CellValue::Formula(expr) => {
                                            numbers.push(self.evaluate_cell((row, column), &expr)?)
                                        }
                                        CellValue::Empty | CellValue::Text => {}
                                    }
                                }
                            }
                        }
                        other => numbers.push(self.eval(other)?),
                    }
                }
                let count = numbers.len() as f64;
                Ok(match function {
                    Function::Sum => numbers.iter().sum(),
                    Function::Count => count,
                    Function::Average if numbers.is_empty() => {
                        return Err("AVERAGE over no numbers (division by zero)".into());
                    }
                    Function::Average => numbers.iter().sum::<f64>() / count,
                    Function::Min => numbers.iter().copied().reduce(f64::min).unwrap_or(0.0),
                    Function::Max => numbers.iter().copied().reduce(f64::max).unwrap_or(0.0),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds { rows: 4, columns: 3 };

    fn sheet(at: CellPos) -> CellValue {
        match at {
            (0, _) => CellValue::Text,
            (r, 1) => CellValue::Number(r as f64 * 10.0),
            (3, 2) => CellValue::Formula(parse("=C2+1", BOUNDS).unwrap()),
            (1, 2) => CellValue::Formula(parse("=B2*2", BOUNDS).unwrap()),
            _ => CellValue::Empty,
        }
    }

    fn eval(formula: &str) -> Result<f64, String> {
        let expr = parse(formula, BOUNDS)?;
        Evaluator::new(&sheet).evaluate_cell((2, 2), &expr)
    }

    #[test]
    fn evaluates_functions_and_arithmetic() {
        assert_eq!(eval("=SUM(B2:B4)").unwrap(), 60.0);
        assert_eq!(eval("=average(B2:B4)").unwrap(), 20.0);
        assert_eq!(eval("=MAX(B2:B4)-MIN(B2:B4)").unwrap(), 20.0);
        assert_eq!(eval("=COUNT(A1:B4)").unwrap(), 3.0);
        assert_eq!(eval("=(B2+B3)*2/-4").unwrap(), -15.0);
        assert_eq!(eval("=$B$2 + C2").unwrap(), 30.0, "formula cells are evaluated through");
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        assert!(eval("=B9").unwrap_err().contains("outside the sheet"));
        assert!(eval("=SUM(B2:Z2)").unwrap_err().contains("outside the sheet"));
        assert!(eval("=Other!B2").unwrap_err().contains("another sheet"));
        assert!(eval("=VLOOKUP(B2)").unwrap_err().contains("not supported"));
        assert!(eval("=B2/0").unwrap_err().contains("division by zero"));
        assert!(eval("=A1+1").unwrap_err().contains("not a number"));
        let cyclic = |at: CellPos| match at {
            (1, 0) => CellValue::Formula(parse("=A3", BOUNDS).unwrap()),
            (2, 0) => CellValue::Formula(parse("=A2", BOUNDS).unwrap()),
            _ => CellValue::Empty,
        };
        let expr = parse("=A3", BOUNDS).unwrap();
        assert!(
            Evaluator::new(&cyclic)
                .evaluate_cell((1, 0), &expr)
                .unwrap_err()
                .contains("circular")
        );
    }

    #[test]
    fn names_columns() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(cell_name((0, 27)), "AB1");
    }
}
