//! Validators and ranges (RFC 9110 8.8, 13 and 14), as nginx answers them for static files.
//!
//! - A file's validators are nginx's: `Last-Modified`, its modification time (whole seconds)
//!   as an IMF-fixdate, and `ETag: "<mtime hex>-<size hex>"` (`ngx_http_set_etag`).
//! - [`not_modified`]: `If-None-Match` (`*`, or a list of entity tags compared weakly, `W/`
//!   ignored) when sent, else `If-Modified-Since` (an IMF-fixdate; the file not modified after
//!   it). True means `304 Not Modified`.
//! - [`range`]: a single `Range: bytes=a-b`, `a-` or `-n` gives a part of the file; `If-Range`
//!   (an entity tag equal to the file's, strong, or a date equal to its modification time, as
//!   nginx compares them) must match, or the whole file is sent.
//!
//! Pure functions of the fields' text, with no I/O: `tests/http_codec.rs` includes this file.

/// The nginx entity tag of a file modified at `mtime` (seconds since the Unix epoch) of `len`
/// bytes: `"<mtime hex>-<size hex>"`.
pub fn etag(mtime: u64, len: u64) -> String {
    format!("\"{mtime:x}-{len:x}\"")
}

/// The seconds since the Unix epoch an HTTP-date names (RFC 9110 5.6.7): an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), or one of the obsolete forms every recipient must read
/// too, RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`, a year `00`-`69` taken as 20xx) and asctime
/// (`Sun Nov  6 08:49:37 1994`), as nginx's `ngx_parse_http_time` reads them. `None` for
/// anything else, or a date before 1970: a condition that cannot be read is ignored (RFC 9110
/// 13.1.3). The weekday is checked for form, not against the date.
pub fn parse_http_date(text: &str) -> Option<u64> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const LONG_DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let fields: Vec<&str> = text.split(' ').collect();
    let (day, month, year, time) = match fields[..] {
        // IMF-fixdate.
        [weekday, day, month, year, time, "GMT"] => {
            let weekday = weekday.strip_suffix(',')?;
            if !DAYS.contains(&weekday) || day.len() != 2 || year.len() != 4 {
                return None;
            }
            (number(day)?, month, number(year)?, time)
        }
        // RFC 850.
        [weekday, date, time, "GMT"] => {
            if !LONG_DAYS.contains(&weekday.strip_suffix(',')?) {
                return None;
            }
            let [day, month, year] = date.split('-').collect::<Vec<_>>()[..] else {
                return None;
            };
            if day.len() != 2 || year.len() != 2 {
                return None;
            }
            let year = number(year)?;
            let year = if year < 70 { 2000 + year } else { 1900 + year };
            (number(day)?, month, year, time)
        }
        // asctime: a day under 10 is padded with a space (two spaces in a row).
        [weekday, month, "", day, time, year] | [weekday, month, day, time, year] => {
            if !DAYS.contains(&weekday) || day.is_empty() || day.len() > 2 || year.len() != 4 {
                return None;
            }
            (number(day)?, month, number(year)?, time)
        }
        _ => return None,
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|&m| m == month)? as u64 + 1;
    let [hour, minute, second] = time.split(':').collect::<Vec<_>>()[..] else {
        return None;
    };
    if [hour, minute, second].iter().any(|t| t.len() != 2) {
        return None;
    }
    let (hour, minute, second) = (number(hour)?, number(minute)?, number(second)?);
    let bad_day = day == 0 || day > days_in_month(year, month);
    // A second of 60: a leap second, which the grammar allows.
    if year < 1970 || bad_day || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (year >= 1970, month 1-12, day 1-31): the inverse of
/// `response.rs`'s `civil_from_days`, in the same 400-year eras of years starting in March.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = year - u64::from(month <= 2); // January and February end the year before
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The entity tags of an `If-None-Match` or `If-Range` value, each with whether it is weak:
/// `None` for `*`; tags that are not well formed end the list (what came before counts).
fn entity_tags(value: &str) -> Option<Vec<(bool, &str)>> {
    if value.trim() == "*" {
        return None;
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, tag) = match rest.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        let Some(inside) = tag.strip_prefix('"') else {
            break;
        };
        let Some(end) = inside.find('"') else {
            break;
        };
        tags.push((weak, &tag[..end + 2])); // the quotes included
        rest = &inside[end + 1..];
    }
    Some(tags)
}

/// True if a request with `if_none_match` and `if_modified_since` (the fields' values) has the
/// file (modified at `mtime`, tagged `etag`) already: answer `304 Not Modified`. With
/// `If-None-Match`, `If-Modified-Since` is not looked at (RFC 9110 13.1.3). A file with no
/// modification time has no validators: never 304.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    mtime: Option<u64>,
    etag: Option<&str>,
) -> bool {
    let (Some(mtime), Some(etag)) = (mtime, etag) else {
        return false;
    };
    if let Some(value) = if_none_match {
        return match entity_tags(value) {
            None => true,                                               // `*`: the file exists
            Some(tags) => tags.iter().any(|&(_weak, tag)| tag == etag), // weak comparison
        };
    }
    // Not modified since: as nginx's `if_modified_since before`, and RFC 9110 13.1.3 (nginx's
    // default, `exact`, wants the very date; a date sent back is that date).
    if_modified_since
        .and_then(parse_http_date)
        .is_some_and(|since| mtime <= since)
}

/// What part of a file to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// All of it, `200 OK`: no `Range`, one that is not well formed, several ranges (nginx
    /// sends those as `multipart/byteranges`; this server does not), another unit than
    /// `bytes`, or an `If-Range` that does not match.
    Whole,
    /// Bytes `first..=last`, `206 Partial Content`.
    Bytes { first: u64, last: u64 },
    /// `416 Range Not Satisfiable`: the range starts at or past the end, or asks the last 0
    /// bytes. (An empty file gets `200` for `0-` and `-n`, as from nginx.)
    Unsatisfiable,
}

/// The part of a file of `len` bytes (modified at `mtime`, tagged `etag`) a request with
/// `range` and `if_range` (the fields' values) asks for.
pub fn range(
    range: Option<&str>,
    if_range: Option<&str>,
    len: u64,
    mtime: Option<u64>,
    etag: Option<&str>,
) -> Part {
    let Some(range) = range else {
        return Part::Whole;
    };
    if let Some(value) = if_range {
        let matches = match value.ends_with('"') {
            // A strong tag equal to the file's (a weak one never matches).
            true => etag == Some(value),
            false => mtime.is_some() && parse_http_date(value) == mtime,
        };
        if !matches {
            return Part::Whole;
        }
    }
    let Some((unit, specs)) = range.split_once('=') else {
        return Part::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Part::Whole;
    }
    let mut specs = specs.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return Part::Whole; // none, or several
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Part::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last `n` bytes.
        let Some(n) = number(last) else {
            return Part::Whole;
        };
        return match (n, len) {
            (0, _) => Part::Unsatisfiable,
            (_, 0) => Part::Whole, // an empty file: no byte to send a part of (nginx: 200)
            _ => Part::Bytes {
                first: len.saturating_sub(n),
                last: len - 1,
            },
        };
    }
    let Some(first) = number(first) else {
        return Part::Whole;
    };
    let last = match last.is_empty() {
        true => u64::MAX,
        false => match number(last) {
            Some(last) if last >= first => last,
            _ => return Part::Whole, // `5-2` is not a range (RFC 9110 14.1.1)
        },
    };
    if first >= len {
        return match first {
            0 => Part::Whole, // `0-` of an empty file (nginx: 200)
            _ => Part::Unsatisfiable,
        };
    }
    Part::Bytes {
        first,
        last: last.min(len - 1),
    }
}

/// Decimal digits, saturating at `u64::MAX` (a position past any file); `None` if not digits.
fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}
