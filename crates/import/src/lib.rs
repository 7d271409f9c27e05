//! Reads a customer-assignment import: a CSV file with the columns Customer #,
//! Assigned Groups, Start Date & Time and End Date & Time, as billing and retail
//! platforms export them.
//!
//! The reader streams: it holds one row at a time, so a file of a million rows costs no
//! more memory than a file of ten. It takes what spreadsheets produce — a UTF-8 byte
//! order mark, CRLF line ends, quoted fields holding separators or line breaks, `,` or
//! `;` as the separator, header names in any case and spacing — and reports every bad
//! row by line and column. Whether a customer or group exists, and whether rows
//! duplicate or overlap each other, is for the caller, which has the store.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use cohort_model::Timestamp;

/// A sample file: the header row and example rows, for operators to start from.
pub const TEMPLATE: &str = "\
Customer #,Assigned Groups,Start Date & Time,End Date & Time
C-1001,vip,2026-03-01,2026-06-01
C-1002,\"vip, wholesale\",2026-03-01T08:00:00+01:00,
C-1003,staff,,2099-12-31 18:00
";

/// The columns an import needs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    Customer,
    Groups,
    Start,
    End,
}

impl Column {
    pub const ALL: [Column; 4] = [Column::Customer, Column::Groups, Column::Start, Column::End];

    /// A column by the name an operator uses for it: `customer`, `groups`, `start`, `end`.
    pub fn named(name: &str) -> Option<Column> {
        match name.trim().to_lowercase().as_str() {
            "customer" => Some(Column::Customer),
            "groups" => Some(Column::Groups),
            "start" => Some(Column::Start),
            "end" => Some(Column::End),
            _ => None,
        }
    }

    /// The standard header, as in the template.
    pub fn header(self) -> &'static str {
        match self {
            Column::Customer => "Customer #",
            Column::Groups => "Assigned Groups",
            Column::Start => "Start Date & Time",
            Column::End => "End Date & Time",
        }
    }

    /// Header spellings recognised without a mapping, after [`squash`].
    fn variants(self) -> &'static [&'static str] {
        match self {
            Column::Customer => &[
                "customer",
                "customerno",
                "customernumber",
                "customerid",
                "customernr",
                "client",
                "clientid",
                "account",
                "accountno",
                "accountnumber",
            ],
            Column::Groups => &[
                "assignedgroups",
                "assignedgroup",
                "groups",
                "group",
                "customergroups",
                "customergroup",
            ],
            Column::Start => &[
                "startdatetime",
                "startdateandtime",
                "startdate",
                "start",
                "starttime",
                "validfrom",
                "from",
            ],
            Column::End => &[
                "enddatetime",
                "enddateandtime",
                "enddate",
                "end",
                "endtime",
                "validto",
                "validuntil",
                "to",
                "until",
            ],
        }
    }
}

/// A header reduced to lower-case letters and digits: `Customer #` and `customer_no`
/// compare as `customer` and `customerno`.
pub fn squash(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// How to read a file.
#[derive(Clone, Debug)]
pub struct Options {
    /// Dates without an offset are read in this zone; a date alone is its midnight.
    pub time_zone: Tz,
    /// The time an empty start means.
    pub now: Timestamp,
    /// Explicit header for a column, overriding recognition.
    pub mapping: BTreeMap<Column, String>,
}

/// Explicit headers from `COLUMN=HEADER` pairs such as `customer=Kunde`.
pub fn mapping<'a>(
    pairs: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<Column, String>, String> {
    let mut columns = BTreeMap::new();
    for pair in pairs {
        let (column, header) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not COLUMN=HEADER"))?;
        let column = Column::named(column).ok_or_else(|| {
            format!(
                "`{}` is not a column: use customer, groups, start or end",
                column.trim()
            )
        })?;
        columns.insert(column, header.trim().to_string());
    }
    Ok(columns)
}

/// An IANA time zone by name, such as `Europe/Berlin`.
pub fn time_zone(name: &str) -> Result<Tz, String> {
    name.parse()
        .map_err(|_| format!("`{name}` is not an IANA time zone (such as `Europe/Berlin`)"))
}

/// A file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the file is empty: it needs a header row ({})", headers())]
    Empty,
    #[error(
        "no column for {what}: the headers are {found}; name it with a mapping such as `--map \"{standard}=<header>\"`"
    )]
    MissingColumn {
        what: &'static str,
        standard: &'static str,
        found: String,
    },
    #[error(
        "the mapping names header `{header}` for {what}, but the file has no such header (headers: {found})"
    )]
    MappedHeaderMissing {
        what: &'static str,
        header: String,
        found: String,
    },
    #[error("headers `{first}` and `{second}` both look like {what}; map one explicitly")]
    Ambiguous {
        what: &'static str,
        first: String,
        second: String,
    },
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
}

fn headers() -> String {
    Column::ALL.map(Column::header).join(", ")
}

/// One good row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    pub customer: String,
    pub groups: Vec<String>,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// A row that cannot be imported, by line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {message}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
pub struct RowError {
    pub line: u64,
    /// The header of the offending column, as the file spells it.
    pub column: Option<String>,
    pub message: String,
}

/// The bytes between the start of the current record and what the CSV parser has
/// read ahead, to number lines exactly: a quoted field may span lines, blank lines are
/// skipped, and a line ends at LF, at CR LF (once) or at a CR alone, as the CSV parser
/// ends records. The CSV parser's own line count gets these wrong.
#[derive(Default)]
struct Tape {
    /// Byte offset of `bytes[0]` in the file.
    base: u64,
    /// Line breaks before `base`.
    lines: u64,
    /// Whether the byte before `base` was a CR, whose LF (if one follows) is the same
    /// line break.
    after_cr: bool,
    bytes: VecDeque<u8>,
}

impl Tape {
    /// The line on which the record at byte `offset` starts (the first line is 1), and
    /// forget everything before it: records come in order.
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut i = usize::try_from(offset.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        // The parser may place a record at the line break that ends the one before.
        while matches!(self.bytes.get(i), Some(b'\n' | b'\r')) {
            i += 1;
        }
        for &b in self.bytes.range(..i) {
            // A line break is counted at its CR, or at an LF that no CR came before.
            if b == b'\r' || (b == b'\n' && !self.after_cr) {
                self.lines += 1;
            }
            self.after_cr = b == b'\r';
        }
        self.bytes.drain(..i);
        self.base += i as u64;
        self.lines + 1
    }
}

/// Copies what the parser reads onto the tape.
struct Recorder<R> {
    inner: R,
    tape: Rc<RefCell<Tape>>,
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tape.borrow_mut().bytes.extend(&buf[..n]);
        Ok(n)
    }
}

/// Streams the rows of an import file.
pub struct Rows<R: Read> {
    csv: csv::Reader<Recorder<BufReader<R>>>,
    tape: Rc<RefCell<Tape>>,
    index: BTreeMap<Column, usize>,
    names: Vec<String>,
    options: Options,
    record: csv::StringRecord,
}

impl<R: Read> std::fmt::Debug for Rows<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("headers", &self.names)
            .finish()
    }
}

/// Open an import: detect the separator, read and map the header row.
pub fn open<R: Read>(input: R, options: Options) -> Result<Rows<R>, FileError> {
    let mut input = BufReader::with_capacity(64 << 10, input);
    let delimiter = detect_delimiter(input.fill_buf()?);
    let tape = Rc::new(RefCell::new(Tape::default()));
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(Recorder {
            inner: input,
            tape: Rc::clone(&tape),
        });
    let header = csv.headers().map_err(|e| csv_error(&e))?.clone();
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            };
            h.trim().to_string()
        })
        .collect();
    if names.iter().all(String::is_empty) {
        return Err(FileError::Empty);
    }
    let found = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut index = BTreeMap::new();
    for column in Column::ALL {
        let what = column.header();
        let position = match options.mapping.get(&column) {
            Some(mapped) => {
                let wanted = squash(mapped);
                let at = names
                    .iter()
                    .position(|n| squash(n) == wanted)
                    .ok_or_else(|| FileError::MappedHeaderMissing {
                        what,
                        header: mapped.clone(),
                        found: found.clone(),
                    })?;
                Some(at)
            }
            None => {
                let mut hits = names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| column.variants().contains(&squash(n).as_str()));
                let first = hits.next();
                if let (Some((_, a)), Some((_, b))) = (first, hits.next()) {
                    return Err(FileError::Ambiguous {
                        what,
                        first: a.clone(),
                        second: b.clone(),
                    });
                }
                first.map(|(i, _)| i)
            }
        };
        match position {
            Some(at) => {
                index.insert(column, at);
            }
            // Start and end may be left out entirely: now, and open-ended.
            None if matches!(column, Column::Start | Column::End) => {}
            None => {
                return Err(FileError::MissingColumn {
                    what,
                    standard: what,
                    found,
                });
            }
        }
    }
    Ok(Rows {
        csv,
        tape,
        index,
        names,
        options,
        record: csv::StringRecord::new(),
    })
}

/// `;` when the header line has more semicolons than commas outside quotes, else `,`.
fn detect_delimiter(head: &[u8]) -> u8 {
    let line = head
        .split(|&b| b == b'\n' || b == b'\r')
        .next()
        .unwrap_or_default();
    let (mut commas, mut semicolons, mut quoted) = (0, 0, false);
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > commas { b';' } else { b',' }
}

fn csv_error(e: &csv::Error) -> FileError {
    FileError::Csv {
        // Only the header row is read before rows are numbered.
        line: 1,
        message: e.to_string(),
    }
}

impl<R: Read> Rows<R> {
    fn field(&self, column: Column) -> Option<&str> {
        self.index
            .get(&column)
            .and_then(|&i| self.record.get(i))
            .map(str::trim)
    }

    fn error(&self, line: u64, column: Option<Column>, message: String) -> RowError {
        RowError {
            line,
            column: column.map(|c| self.header(c)),
            message,
        }
    }

    /// A column's header as the file spells it (the standard header if the file has
    /// no such column): what errors about the column call it.
    pub fn header(&self, column: Column) -> String {
        self.index
            .get(&column)
            .and_then(|&i| self.names.get(i).cloned())
            .unwrap_or_else(|| column.header().to_string())
    }

    fn row(&self, line: u64) -> Result<Row, RowError> {
        if self.record.len() > self.names.len() {
            return Err(self.error(
                line,
                None,
                format!(
                    "{} fields where the header has {} (a separator inside a value needs quotes)",
                    self.record.len(),
                    self.names.len()
                ),
            ));
        }
        let customer = self.field(Column::Customer).unwrap_or_default();
        if customer.is_empty() {
            return Err(self.error(line, Some(Column::Customer), "is empty".into()));
        }
        if let Err(problem) = cohort_model::check_customer_id(customer) {
            return Err(self.error(
                line,
                Some(Column::Customer),
                format!(
                    "`{}` is not a customer id: {problem}",
                    cohort_model::shown(customer)
                ),
            ));
        }
        let groups: Vec<String> = self
            .field(Column::Groups)
            .unwrap_or_default()
            .split([',', ';', '|'])
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        if groups.is_empty() {
            return Err(self.error(line, Some(Column::Groups), "names no group".into()));
        }
        let when = |column: Column| -> Result<Option<Timestamp>, RowError> {
            match self.field(column) {
                None | Some("") => Ok(None),
                Some(text) => parse_time(text, self.options.time_zone)
                    .map(Some)
                    .map_err(|m| self.error(line, Some(column), m)),
            }
        };
        let start = when(Column::Start)?.unwrap_or(self.options.now);
        let end = when(Column::End)?;
        if let Some(end) = end
            && end <= start
        {
            return Err(self.error(
                line,
                Some(Column::End),
                format!(
                    "ends at `{}`, not after its start `{}`",
                    self.field(Column::End).unwrap_or_default(),
                    self.field(Column::Start)
                        .filter(|s| !s.is_empty())
                        .unwrap_or("now")
                ),
            ));
        }
        Ok(Row {
            line,
            customer: customer.to_string(),
            groups,
            start,
            end,
        })
    }
}

impl<R: Read> Iterator for Rows<R> {
    type Item = Result<Row, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut record = std::mem::take(&mut self.record);
            let read = self.csv.read_record(&mut record);
            self.record = record;
            match read {
                Ok(false) => return None,
                Err(e) => {
                    let line = e
                        .position()
                        .map_or(0, |p| self.tape.borrow_mut().line_at(p.byte()));
                    return Some(Err(self.error(line, None, e.to_string())));
                }
                Ok(true) => {
                    let line = self
                        .record
                        .position()
                        .map_or(0, |p| self.tape.borrow_mut().line_at(p.byte()));
                    // Blank lines (all fields empty) are skipped, as spreadsheets leave them.
                    if self.record.iter().all(|f| f.trim().is_empty()) {
                        continue;
                    }
                    return Some(self.row(line));
                }
            }
        }
    }
}

/// An ISO 8601 date or date-time. With an offset it is absolute; without one it is
/// read in `zone`; a date alone is the start of that day in `zone`.
pub fn parse_time(text: &str, zone: Tz) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Ok(t.timestamp());
        }
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            format!("`{text}` is not an ISO 8601 date or date-time (e.g. 2026-03-01 or 2026-03-01T08:00:00+01:00)")
        })?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
        .ok_or_else(|| {
            format!("`{text}` does not exist in time zone {zone} (a daylight-saving gap)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = 1_780_000_000;

    fn options() -> Options {
        Options {
            time_zone: chrono_tz::Europe::Berlin,
            now: NOW,
            mapping: BTreeMap::new(),
        }
    }

    fn read(text: &str) -> Vec<Result<Row, RowError>> {
        open(text.as_bytes(), options()).expect("opens").collect()
    }

    fn ok(text: &str) -> Vec<Row> {
        read(text)
            .into_iter()
            .map(|r| r.expect("row is good"))
            .collect()
    }

    #[test]
    fn the_template_reads_cleanly() {
        let rows = ok(TEMPLATE);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1].groups,
            ["vip", "wholesale"],
            "a quoted cell with a separator"
        );
        assert_eq!(rows[2].start, NOW, "an empty start is now");
        assert_eq!(rows[1].end, None, "an empty end is open-ended");
        assert_eq!(rows[0].line, 2);
    }

    #[test]
    fn bom_crlf_semicolons_and_header_variants() {
        let text = "\u{feff}customer_no;GROUPS;  Start Date ;valid until\r\nC-1;VIP|Staff;2026-03-01;\r\n\r\nC-2;\"a;b\";;\r\n";
        let rows = ok(text);
        assert_eq!(rows.len(), 2, "the blank line is skipped");
        assert_eq!(rows[0].customer, "C-1");
        assert_eq!(rows[0].groups, ["VIP", "Staff"]);
        assert_eq!(rows[1].groups, ["a", "b"]);
        assert_eq!(rows[1].line, 4);
    }

    #[test]
    fn a_customer_id_follows_the_rule_of_every_other_way_in() {
        let rows = read("Customer #,Assigned Groups\n../../etc/passwd,VIP\nC-2,VIP\n");
        let e = rows[0].as_ref().expect_err("not an id");
        assert_eq!(e.column.as_deref(), Some("Customer #"));
        assert!(e.message.contains("is not a customer id"), "{}", e.message);
        assert!(rows[1].is_ok());
    }

    #[test]
    fn a_carriage_return_alone_ends_a_line_as_it_ends_a_record() {
        // Old Mac files end lines with CR alone; CR LF still counts once.
        let rows = ok("Customer #,Assigned Groups\rC-1,VIP\rC-2,VIP\r\nC-3,VIP\n");
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 4]);
    }

    #[test]
    fn quoted_fields_may_hold_line_breaks() {
        let rows = ok("Customer #,Assigned Groups\n\"C-1\",\"VIP,\nStaff\"\nC-2,VIP\n");
        assert_eq!(rows[0].groups, ["VIP", "Staff"]);
        assert_eq!(rows[1].line, 4, "line numbers count the embedded break");
    }

    #[test]
    fn explicit_mapping_wins() {
        let mut o = options();
        o.mapping.insert(Column::Customer, "Kundennummer".into());
        o.mapping.insert(Column::Groups, "Gruppen".into());
        let rows: Vec<_> = open("Kundennummer,Gruppen\n7,VIP\n".as_bytes(), o)
            .expect("opens")
            .collect();
        assert_eq!(rows[0].as_ref().expect("good").customer, "7");
        let mut o = options();
        o.mapping.insert(Column::Customer, "Nummer".into());
        let err = open("Kundennummer,Gruppen\n".as_bytes(), o).expect_err("no such header");
        assert!(err.to_string().contains("no such header"), "{err}");
    }

    #[test]
    fn missing_and_ambiguous_columns_are_named() {
        let err = open("Name,Groups\n".as_bytes(), options()).expect_err("no customer column");
        let text = err.to_string();
        assert!(
            text.contains("no column for Customer #") && text.contains("`Name`"),
            "{text}"
        );
        let err = open("Customer,Client,Groups\n".as_bytes(), options()).expect_err("two");
        assert!(
            err.to_string().contains("both look like Customer #"),
            "{err}"
        );
        assert!(matches!(
            open("".as_bytes(), options()),
            Err(FileError::Empty)
        ));
    }

    #[test]
    fn dates_in_every_form() {
        let berlin = chrono_tz::Europe::Berlin;
        // A date alone: midnight in Berlin (CET, UTC+1).
        assert_eq!(parse_time("2026-03-01", berlin), Ok(1_772_319_600));
        assert_eq!(
            parse_time("2026-03-01T00:00:00+01:00", berlin),
            Ok(1_772_319_600)
        );
        assert_eq!(
            parse_time("2026-02-28T23:00:00Z", berlin),
            Ok(1_772_319_600)
        );
        assert_eq!(parse_time("2026-03-01 00:00", berlin), Ok(1_772_319_600));
        assert_eq!(
            parse_time("2026-03-01T00:00:00.000", berlin),
            Ok(1_772_319_600)
        );
        // Summer time: UTC+2.
        assert_eq!(parse_time("2026-07-01", berlin), Ok(1_782_856_800));
        let err = parse_time("2026-03-29 02:30", berlin).expect_err("in the DST gap");
        assert!(err.contains("daylight-saving gap"), "{err}");
        assert!(parse_time("01/03/2026", berlin).is_err());
    }

    #[test]
    fn bad_rows_are_named_by_line_and_column() {
        let got = read(
            "Customer #,Assigned Groups,Start Date & Time,End Date & Time\n\
             ,VIP,,\n\
             C-2,,,\n\
             C-3,VIP,2026-13-01,\n\
             C-4,VIP,2026-06-01,2026-05-01\n\
             C-5,VIP,,,extra\n\
             C-6,VIP,,\n",
        );
        let errors: Vec<String> = got
            .iter()
            .filter_map(|r| r.as_ref().err().map(ToString::to_string))
            .collect();
        assert_eq!(
            errors,
            [
                "line 2, column `Customer #`: is empty",
                "line 3, column `Assigned Groups`: names no group",
                "line 4, column `Start Date & Time`: `2026-13-01` is not an ISO 8601 date or date-time (e.g. 2026-03-01 or 2026-03-01T08:00:00+01:00)",
                "line 5, column `End Date & Time`: ends at `2026-05-01`, not after its start `2026-06-01`",
                "line 6: 5 fields where the header has 4 (a separator inside a value needs quotes)",
            ]
        );
        assert!(got[5].is_ok(), "a good row after bad ones still reads");
    }

    #[test]
    fn a_million_rows_stream() {
        // Built lazily, so the test itself holds no million-row string.
        struct Lines(u64);
        impl Read for Lines {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Ok(0);
                }
                let line = if self.0 == 1_000_001 {
                    "Customer #,Assigned Groups\n".to_string()
                } else {
                    format!("C-{},VIP\n", self.0)
                };
                self.0 -= 1;
                let n = line.len().min(buf.len());
                buf[..n].copy_from_slice(&line.as_bytes()[..n]);
                Ok(n)
            }
        }
        let count = open(Lines(1_000_001), options())
            .expect("opens")
            .filter(|r| r.is_ok())
            .count();
        assert_eq!(count, 1_000_000);
    }
}
