//! Validators: run on a candidate span after the automaton matched it, pure functions over
//! bytes. Each returns the byte range to report (a sub-range of the candidate, or the
//! candidate itself), or `None` when the candidate is not a real value.

use std::ops::Range;

/// The calendar year after which a date cannot be a date of birth.
const MAX_BIRTH_YEAR: u32 = 2026;

/// Is `b` a byte of an identifier-like token (ASCII letter, digit or `_`), or a non-ASCII
/// byte (letters of other scripts count as word characters).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The byte before `at`, if any.
fn before(text: &[u8], at: usize) -> Option<u8> {
    at.checked_sub(1).map(|i| text[i])
}

/// The byte at `at`, if any.
fn after(text: &[u8], at: usize) -> Option<u8> {
    text.get(at).copied()
}

/// The digits of `s`, as numbers.
fn digits(s: &[u8]) -> Vec<u8> {
    s.iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect()
}

/// Is the value glued to a preceding group of a longer grouped number (`ES73 6622 3892 ...`
/// seen from `3892`): a space or dash, then a short run of letters and digits with a digit.
fn glued_group_before(text: &[u8], start: usize) -> bool {
    let mut end = start;
    // The group just before, and (when it is a group of capitals, as in an IBAN) the one
    // before it.
    for _ in 0..2 {
        if !matches!(before(text, end), Some(b' ' | b'-')) {
            return false;
        }
        end -= 1;
        let run = text[..end]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let group = &text[end - run..end];
        if run == 0 || run > 6 {
            return false;
        }
        if group.iter().any(u8::is_ascii_digit) {
            return true;
        }
        if !group.iter().all(u8::is_ascii_uppercase) || run != 4 {
            return false;
        }
        end -= run;
    }
    false
}

/// Patterns written `(?:^|[^X])X...` match their left boundary character too (a word
/// boundary the lazy DFA can run on any text): the range without it. `member` tells the
/// value's own characters (at the start of the text, the value starts there).
fn after_boundary(text: &[u8], r: Range<usize>, member: fn(char) -> bool) -> Option<Range<usize>> {
    // The candidate is valid UTF-8 (the pattern only matches whole characters).
    let first = std::str::from_utf8(&text[r.clone()]).ok()?.chars().next()?;
    if r.start == 0 && member(first) {
        Some(r)
    } else {
        Some(r.start + first.len_utf8()..r.end)
    }
}

/// Luhn checksum over digits.
pub(crate) fn luhn(ds: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in ds.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Does the digit string start with a known issuer prefix, with a length that issuer uses.
fn card_issuer_ok(ds: &[u8]) -> bool {
    let n = ds.len();
    let prefix = |k: usize| ds.iter().take(k).fold(0u32, |a, &d| a * 10 + u32::from(d));
    let p1 = prefix(1);
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    let p6 = prefix(6);
    // Visa
    (p1 == 4 && matches!(n, 13 | 16 | 19))
        // Mastercard
        || ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && n == 16
        // American Express
        || (p2 == 34 || p2 == 37) && n == 15
        // Discover
        || (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622_126..=622_925).contains(&p6))
            && (16..=19).contains(&n)
        // JCB
        || (3528..=3589).contains(&p4) && (16..=19).contains(&n)
        // Diners Club
        || ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && (14..=19).contains(&n)
        // UnionPay
        || p2 == 62 && (16..=19).contains(&n)
        // Maestro
        || matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763)
            && (12..=19).contains(&n)
}

/// A payment card number: 13-19 digits, one separator kind in card-style groups, Luhn-valid,
/// a known issuer prefix and length.
pub(crate) fn payment_card(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    if matches!(before(text, r.start), Some(b'-' | b'.' | b'/' | b'+'))
        || matches!(after(text, r.end), Some(b'-' | b'.' | b'/'))
            && text.get(r.end + 1).is_some_and(u8::is_ascii_digit)
        || glued_group_before(text, r.start)
    {
        return None;
    }
    let seps: Vec<u8> = s.iter().copied().filter(|b| !b.is_ascii_digit()).collect();
    if let Some(&first) = seps.first() {
        if seps.iter().any(|&b| b != first) {
            return None;
        }
        let groups: Vec<usize> = s.split(|&b| b == first).map(<[u8]>::len).collect();
        let ok = groups.len() >= 3
            && (groups[..groups.len() - 1].iter().all(|&g| g == 4)
                || groups == [4, 6, 5]
                || groups == [4, 6, 4]);
        if !ok {
            return None;
        }
    }
    let ds = digits(s);
    // Written without separators, a card has 15 or 16 digits; a 13- or 19-digit run is
    // far more often a constant. A run in a list of numbers whose neighbour is not a card
    // is data too (`(4951948911778577463, 1273147485209053803)`).
    if seps.is_empty()
        && (!(15..=16).contains(&ds.len())
            || neighbour_number(text, r.start, false).is_some_and(|n| !plain_card(n))
            || neighbour_number(text, r.end, true).is_some_and(|n| !plain_card(n)))
    {
        return None;
    }
    plain_card(&ds_to_ascii(&ds)).then_some(r)
}

/// Digits back to ASCII.
fn ds_to_ascii(ds: &[u8]) -> Vec<u8> {
    ds.iter().map(|d| d + b'0').collect()
}

/// A run of ASCII digits that is a valid card number (Luhn, issuer, not one repeated digit).
fn plain_card(run: &[u8]) -> bool {
    let ds = digits(run);
    ds.len() == run.len() && luhn(&ds) && card_issuer_ok(&ds) && ds.iter().any(|&d| d != ds[0])
}

/// The neighbouring list element, when it is a number of ten or more digits: the digits
/// after skipping spaces and one `,` / `;` / bracket (before `at` with `forward == false`,
/// after it otherwise).
fn neighbour_number(text: &[u8], at: usize, forward: bool) -> Option<&[u8]> {
    let sep =
        |b: u8| b.is_ascii_whitespace() || matches!(b, b',' | b';' | b'(' | b')' | b'[' | b']');
    if forward {
        let start = at + text[at..].iter().take(32).take_while(|&&b| sep(b)).count();
        let len = text[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (start > at && len >= 10).then(|| &text[start..start + len])
    } else {
        let end = at
            - text[..at]
                .iter()
                .rev()
                .take(32)
                .take_while(|&&b| sep(b))
                .count();
        let len = text[..end]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (end < at && len >= 10).then(|| &text[end - len..end])
    }
}

/// IBAN lengths per country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// mod-97 of an IBAN (already rearranged is not needed: this rotates).
fn iban_mod97(chars: &[u8]) -> u32 {
    let mut rem = 0u32;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem
}

/// An IBAN: the country's length (the candidate is cut there), mod-97 == 1.
pub(crate) fn iban(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    let country = [s[0], s[1]];
    let len = IBAN_LENGTHS.iter().find(|(c, _)| **c == country)?.1;
    let mut chars = Vec::with_capacity(len);
    let mut end = r.start;
    for (i, &b) in s.iter().enumerate() {
        if b == b' ' {
            continue;
        }
        chars.push(b);
        end = r.start + i + 1;
        if chars.len() == len {
            break;
        }
    }
    if chars.len() != len || after(text, end).is_some_and(is_word_byte) {
        return None;
    }
    (iban_mod97(&chars) == 1).then_some(r.start..end)
}

/// A US SSN: `AAA-GG-SSSS` (or spaces, or nine digits after an `SSN` context word, whose
/// range is the digits only), with area 000 and 666, group 00, serial 0000 and the numbers
/// known to be invalid (advertising and example numbers) excluded. Areas 900-999 are never
/// SSNs but are the IRS's taxpayer numbers (ITIN, ATIN) in the same shape, as sensitive:
/// reported too.
pub(crate) fn us_ssn(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    // The context form: the value is the trailing nine digits.
    let start = if s[0].is_ascii_digit() {
        r.start
    } else {
        r.end - 9
    };
    let ds = digits(&text[start..r.end]);
    if ds.len() != 9 {
        return None;
    }
    if matches!(before(text, start), Some(b'-' | b'.' | b'/' | b'+'))
        || matches!(after(text, r.end), Some(b'-' | b'.' | b'/'))
            && text.get(r.end + 1).is_some_and(u8::is_ascii_digit)
    {
        return None;
    }
    let n = |a: usize, b: usize| {
        ds[a..b]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    let (area, group, serial) = (n(0, 3), n(3, 5), n(5, 9));
    let all = n(0, 9);
    let invalid = area == 0
        || area == 666
        || group == 0
        || serial == 0
        || matches!(all, 78_051_120 | 219_099_999 | 457_555_462 | 123_456_789);
    (!invalid).then_some(start..r.end)
}

/// A dotted-quad IPv4 address: octets ≤ 255 without leading zeros, not part of a longer
/// dotted number, not after a version word (`v`, `version`, `==` ...).
pub(crate) fn ipv4(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    for part in s.split(|&b| b == b'.') {
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        if part.iter().fold(0u32, |a, &d| a * 10 + u32::from(d - b'0')) > 255 {
            return None;
        }
    }
    if matches!(before(text, r.start), Some(b'.' | b'-' | b'_'))
        || matches!(after(text, r.end), Some(b'.' | b'-'))
            && text.get(r.end + 1).is_some_and(u8::is_ascii_alphanumeric)
    {
        return None;
    }
    // Version-number context just before: `version 1.2.3.4`, `==1.2.3.4`, `@1.2.3.4`.
    let lo = r.start.saturating_sub(24);
    let ctx = String::from_utf8_lossy(&text[lo..r.start]).to_ascii_lowercase();
    let ctx = ctx.trim_end_matches(|c: char| c.is_whitespace() || c == ':' || c == '=' || c == '"');
    let last_word: String = ctx
        .chars()
        .rev()
        .take_while(char::is_ascii_alphabetic)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let version_words = [
        "version", "ver", "v", "release", "build", "rev", "revision", "firmware", "kernel", "sdk",
        "python", "node", "go", "java",
    ];
    let raw = String::from_utf8_lossy(&text[lo..r.start]);
    let symbols = ["==", ">=", "<=", "~=", "^", "~", "!="];
    if version_words.contains(&last_word.as_str())
        || symbols.iter().any(|s| raw.trim_end().ends_with(s))
    {
        return None;
    }
    Some(r)
}

/// An IPv6 address: parses as one, with at least four hex digits or the loopback `::1`,
/// not inside an identifier path.
pub(crate) fn ipv6(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let r = after_boundary(text, r, |c| c.is_ascii_hexdigit() || c == ':')?;
    let s = std::str::from_utf8(&text[r.clone()]).ok()?;
    if before(text, r.start).is_some_and(|b| is_word_byte(b) || b == b':')
        || after(text, r.end).is_some_and(|b| is_word_byte(b) || b == b':' || b == b'(')
    {
        return None;
    }
    s.parse::<std::net::Ipv6Addr>().ok()?;
    let hex = s.bytes().filter(u8::is_ascii_hexdigit).count();
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    // Code such as `dfa::DFA`, `DFA::DEAD` or `c::B50` parses too: an address has a
    // digit, and its first group is not a one-letter module name.
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    let first_group = s.split(':').next().map_or(0, str::len);
    (s == "::1"
        || (digit
            && hex >= 4
            && (groups >= 3 || s.contains("::"))
            && (first_group == 0 || first_group >= 2)))
        .then_some(r)
}

/// An e-mail address: sane local part, domain labels, an alphabetic TLD that is not an
/// image file extension (`icon@2x.png`).
pub(crate) fn email(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let r = after_boundary(text, r, |c| c.is_alphanumeric() || "._%+-".contains(c))?;
    let s = &text[r.clone()];
    let at = s.iter().position(|&b| b == b'@')?;
    let (local, domain) = (&s[..at], &s[at + 1..]);
    if local.is_empty()
        || local[0] == b'.'
        || local[local.len() - 1] == b'.'
        || local.windows(2).any(|w| w == b"..")
        || before(text, r.start).is_some_and(|b| b == b'/' || b == b':')
    {
        return None;
    }
    let labels: Vec<&[u8]> = domain.split(|&b| b == b'.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l[0] == b'-' || l[l.len() - 1] == b'-')
    {
        return None;
    }
    let tld = String::from_utf8_lossy(labels[labels.len() - 1]).to_lowercase();
    let image = [
        "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff",
    ];
    // The pattern cannot see a word character right after the TLD (`a@b.com_x`).
    // Glued to a following word, or an SSH remote (`git@github.com:org/repo.git`).
    let glued = after(text, r.end).is_some_and(is_word_byte)
        || (after(text, r.end) == Some(b':')
            && text
                .get(r.end + 1)
                .is_some_and(|&b| is_word_byte(b) || b == b'/'));
    (tld.chars().count() >= 2
        && tld.chars().all(char::is_alphabetic)
        && !image.contains(&tld.as_str())
        && !glued)
        .then_some(r)
}

/// The separators of a phone candidate (non-digits), with the digit count.
fn phone_shape(s: &[u8]) -> (usize, Vec<u8>) {
    let n = s.iter().filter(|b| b.is_ascii_digit()).count();
    let seps = s.iter().copied().filter(|b| !b.is_ascii_digit()).collect();
    (n, seps)
}

/// Common phone boundary rule: not glued to a longer token of digits, dots, dashes or
/// letters.
fn phone_bounds(text: &[u8], r: &Range<usize>) -> bool {
    !glued_group_before(text, r.start)
        && !before(text, r.start)
            .is_some_and(|b| is_word_byte(b) || matches!(b, b'-' | b'.' | b'/' | b'+'))
        && !after(text, r.end).is_some_and(|b| {
            is_word_byte(b)
                || (matches!(b, b'-' | b'.' | b'/' | b':')
                    && text.get(r.end + 1).is_some_and(u8::is_ascii_digit))
        })
}

/// An international number: `+CC` then 8-15 digits in all, groups separated by single
/// spaces, dots or dashes, at most one pair of parentheses.
pub(crate) fn phone_e164(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    let (n, seps) = phone_shape(&s[1..]);
    let (opens, closes) = seps.iter().fold((0, 0), |(o, c), &b| {
        (o + usize::from(b == b'('), c + usize::from(b == b')'))
    });
    let doubled = s.windows(2).any(|w| {
        !w[0].is_ascii_digit()
            && !w[1].is_ascii_digit()
            && !matches!(w, [b')', b' '] | [b' ', b'('])
    });
    ((8..=15).contains(&n) && opens == closes && opens <= 1 && !doubled && phone_bounds(text, &r))
        .then_some(r)
}

/// A North American number: `(555) 123-4567`, `555-123-4567`, `555.123.4567`,
/// `555 123 4567`, optionally `1-` first; area and exchange codes start with 2-9, one
/// separator kind.
pub(crate) fn phone_nanp(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    let (n, seps) = phone_shape(s);
    if !(n == 10 || n == 11) || !phone_bounds(text, &r) {
        return None;
    }
    let plain: Vec<u8> = seps
        .iter()
        .copied()
        .filter(|b| !matches!(b, b'(' | b')'))
        .collect();
    let parens = seps.contains(&b'(');
    let consistent = if parens {
        // `(555) 123-4567`: after the area code any one separator.
        true
    } else {
        plain.windows(2).all(|w| w[0] == w[1])
    };
    consistent.then_some(r)
}

/// A national number with a trunk `0`: `020 7946 0958`, `06 12 34 56 78`, `030 12345678`;
/// 10-12 digits, one separator kind.
pub(crate) fn phone_national(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    let (n, seps) = phone_shape(s);
    // Followed by one more group: a hex dump or an array (`04 00 00 00 00 00`).
    let more = matches!(after(text, r.end), Some(b' ' | b'\t'))
        && text.get(r.end + 1).is_some_and(u8::is_ascii_hexdigit);
    if !(10..=12).contains(&n) || !phone_bounds(text, &r) || more {
        return None;
    }
    seps.windows(2).all(|w| w[0] == w[1]).then_some(r)
}

/// Days in a month (Gregorian).
fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A plausible birth date.
fn valid_birth_date(y: u32, m: u32, d: u32) -> bool {
    (1900..=MAX_BIRTH_YEAR).contains(&y)
        && (1..=12).contains(&m)
        && d >= 1
        && d <= days_in_month(y, m)
}

/// A month name or abbreviation, as its number.
fn month_number(word: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let w = word.to_ascii_lowercase();
    let w = w.trim_end_matches('.');
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| w.starts_with(m))
        .map(|i| i as u32 + 1)
}

/// Is the candidate a calendar date (any of the supported forms) that can be a birth date.
pub(crate) fn date(text: &[u8], r: Range<usize>) -> bool {
    let Ok(s) = std::str::from_utf8(&text[r]) else {
        return false;
    };
    let nums: Vec<u32> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    let month = s
        .split(|c: char| !c.is_ascii_alphabetic() && c != '.')
        .find_map(month_number);
    match (month, nums.as_slice()) {
        (Some(month), [day, year]) => valid_birth_date(*year, month, *day),
        (None, [year, month, day]) if *year >= 1900 => valid_birth_date(*year, *month, *day),
        (None, [first, second, year]) => {
            valid_birth_date(*year, *second, *first) || valid_birth_date(*year, *first, *second)
        }
        _ => false,
    }
}

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = f64::from(u32::try_from(s.len()).unwrap_or(u32::MAX));
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// How many of lowercase, uppercase, digits, other symbols the value mixes.
fn classes(s: &[u8]) -> usize {
    [
        s.iter().any(u8::is_ascii_lowercase),
        s.iter().any(u8::is_ascii_uppercase),
        s.iter().any(u8::is_ascii_digit),
        s.iter().any(|b| !b.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|&&x| x)
    .count()
}

/// Does the value look like a reference or a placeholder rather than a literal secret
/// (`${DB_PASSWORD}`, `<token>`, `os.environ[...]`, `get_token()`, `YOUR_API_KEY`, an
/// identifier or dotted path).
fn placeholder(v: &[u8]) -> bool {
    let s = String::from_utf8_lossy(v).to_ascii_lowercase();
    let refs = [
        "$",
        "{{",
        "<",
        "%",
        "process.env",
        "os.environ",
        "env(",
        "getenv",
        "***",
        "xxx",
        "...",
    ];
    refs.iter().any(|p| s.starts_with(p))
        || s.contains('(')
        || s.contains("your_")
        || s.contains("your-")
        || s.contains("example")
        || s.contains("placeholder")
        || s.contains("changeme")
        || s.contains("redacted")
        || v.iter()
            .all(|&b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
        || v.iter()
            .all(|&b| b.is_ascii_uppercase() || b == b'_' || b == b'.')
        || (v
            .iter()
            .all(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'.' || b == b'-')
            && v.contains(&b'.'))
}

/// A token in `[A-Za-z0-9]` plus the given extra bytes.
fn token_byte(b: u8, extra: &[u8]) -> bool {
    b.is_ascii_alphanumeric() || extra.contains(&b)
}

/// A provider token with a fixed prefix: not glued to a longer token, the random part mixes
/// classes and is not a run of one character.
pub(crate) fn provider_token(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    if before(text, r.start).is_some_and(|b| token_byte(b, b"_-"))
        || after(text, r.end).is_some_and(|b| token_byte(b, b"_-"))
    {
        return None;
    }
    (classes(s) >= 2 && entropy(s) >= 3.0).then_some(r)
}

/// An AWS access key id (`AKIA`/`ASIA` + 16): not inside a longer token.
pub(crate) fn aws_key_id(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    (!before(text, r.start).is_some_and(|b| token_byte(b, b"_"))
        && !after(text, r.end).is_some_and(|b| token_byte(b, b"_"))
        && entropy(&s[4..]) >= 2.5)
        .then_some(r)
}

/// An AWS secret access key after its key word: 40 base64 characters, mixed classes.
pub(crate) fn aws_secret(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let v0 = r.end - 40;
    let v = &text[v0..r.end];
    (!after(text, r.end).is_some_and(|b| token_byte(b, b"/+="))
        && classes(v) >= 3
        && entropy(v) >= 4.0)
        .then_some(v0..r.end)
}

/// A generic secret after a key word (`password`, `secret`, `token`, `api_key` ...): a
/// value of at least 16 bytes (8 for passwords) mixing character classes with a Shannon
/// entropy of at least 3 bits per byte (2.5 for passwords), not a placeholder or reference.
pub(crate) fn generic_secret(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    // The key word (with its prefix-free suffix, `password_hash`, `apiKey`), then the
    // separators (`=`, `:`, `:=`, `=>`, quotes, spaces, `is`, `was`), then the value.
    let key_end = s
        .iter()
        .position(|&b| !token_byte(b, b"_-"))
        .unwrap_or(s.len());
    let mut i = key_end;
    loop {
        let before_skip = i;
        while i < s.len()
            && (s[i].is_ascii_whitespace()
                || matches!(s[i], b'"' | b'\'' | b'`' | b':' | b'=' | b'>'))
        {
            i += 1;
        }
        for word in [&b"is"[..], b"was"] {
            let end = i + word.len();
            if end < s.len() && s[i..end].eq_ignore_ascii_case(word) && s[end].is_ascii_whitespace()
            {
                i = end;
            }
        }
        if i == before_skip {
            break;
        }
    }
    let mut v = &s[i..];
    // Trailing punctuation of prose or code.
    while let Some((&last, rest)) = v.split_last() {
        if matches!(last, b'.' | b',' | b';' | b')' | b']' | b'}') {
            v = rest;
        } else {
            break;
        }
    }
    let key = String::from_utf8_lossy(&s[..key_end]).to_ascii_lowercase();
    let password = key.contains("pass") || key.contains("pwd");
    // A key about the secret rather than holding it (`password_reset_url`, `token_length`).
    let about = [
        "url", "uri", "link", "path", "file", "length", "len", "min", "max", "policy", "field",
        "name", "type", "ttl", "expiry", "expires", "timeout", "count", "size", "id",
    ];
    if key
        .split(['_', '-'])
        .skip(1)
        .any(|part| about.contains(&part))
        || v.starts_with(b"/")
        || v.starts_with(b"./")
        || v.starts_with(b"../")
        || v.windows(3).any(|w| w == b"://")
    {
        return None;
    }
    let (min_len, min_entropy, min_classes) = if password { (8, 2.5, 3) } else { (16, 3.0, 2) };
    // Letters only: an identifier (`accessTokenValue`), not a random token, which has
    // digits or symbols.
    let letters_only = v
        .iter()
        .all(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'-');
    let start = r.start + i;
    (v.len() >= min_len
        && classes(v) >= min_classes
        && entropy(v) >= min_entropy
        && (password || !letters_only)
        && !placeholder(v)
        && !code_expression(v))
    .then_some(start..start + v.len())
}

/// Is the value code rather than a literal: an identifier path followed by an index or a
/// call, or a dotted path (`self.tokens[i]`, `config.api_key`, `request.form['password']`),
/// a type (`proc_macro::TokenStream`, `Mutex<Option<Token>>`), another key (`Host:`), an
/// escaped string (`a\r\nb`), or a `snake_case` / `SCREAMING_CASE` identifier
/// (`bpf_attr__bindgen_ty_20`, `IMAGE_REL_AMD64_TOKEN`).
fn code_expression(v: &[u8]) -> bool {
    if v.windows(2)
        .any(|w| w == b"::" || (w[0] == b'\\' && matches!(w[1], b'r' | b'n' | b't' | b'x' | b'0')))
        || v.contains(&b'<')
        || v.ends_with(b":")
        || matches!(v.first(), Some(b'&' | b'*' | b'[' | b'{' | b'}' | b'('))
    {
        return true;
    }
    if !v
        .first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
    {
        return false;
    }
    let head = v.iter().take_while(|&&b| token_byte(b, b"_.")).count();
    let rest = &v[head..];
    let path = &v[..head];
    let dotted = path.contains(&b'.')
        && path.split(|&b| b == b'.').all(|seg| {
            seg.first()
                .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
        });
    (rest.first().is_some_and(|&b| matches!(b, b'[' | b'(')) && head > 0)
        || (rest.is_empty() && dotted)
        || identifier(v)
        || camel_case(v)
}

/// A `CamelCase` name (`Chacha20Poly1305`, `X509RequestInheritOptions`): letters and
/// digits only, every run of lower-case letters at least two long. Random tokens have
/// single lower-case letters between the others.
fn camel_case(v: &[u8]) -> bool {
    if !v.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_') {
        return false;
    }
    let mut runs = v
        .split(|b| !b.is_ascii_lowercase())
        .filter(|run| !run.is_empty())
        .peekable();
    runs.peek().is_some() && runs.all(|run| run.len() >= 2)
}

/// A `snake_case`, `SCREAMING_CASE` or `Snake_Case` identifier with at least one `_`: each
/// segment all lower case, all upper case or capitalised (digits anywhere). A random token
/// with `_` mixes cases inside its segments.
fn identifier(v: &[u8]) -> bool {
    v.contains(&b'_')
        && v.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
        && v.split(|&b| b == b'_').all(|seg| {
            let lower = seg.iter().all(|b| !b.is_ascii_uppercase());
            let upper = seg.iter().all(|b| !b.is_ascii_lowercase());
            let capitalised = seg.first().is_some_and(u8::is_ascii_uppercase)
                && seg[1..].iter().all(|b| !b.is_ascii_uppercase());
            lower || upper || capitalised
        })
}

/// Decode base64url (no padding), `None` on a bad character.
fn base64url(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A JWT: three base64url parts, the header decodes to a JSON object with `"alg"`.
pub(crate) fn jwt(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    if before(text, r.start).is_some_and(|b| token_byte(b, b"_-"))
        || after(text, r.end).is_some_and(|b| token_byte(b, b"_-"))
    {
        return None;
    }
    let header = s.split(|&b| b == b'.').next()?;
    let decoded = base64url(header)?;
    let h = String::from_utf8_lossy(&decoded);
    (h.trim_start().starts_with('{') && h.contains("\"alg\"")).then_some(r)
}

/// A connection string with a password: `scheme://user:password@host`, the password not
/// empty, not a placeholder or reference.
pub(crate) fn connection_string(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    let auth_start = s.windows(3).position(|w| w == b"://")? + 3;
    let at = s.iter().rposition(|&b| b == b'@')?;
    let auth = &s[auth_start..at];
    let colon = auth.iter().position(|&b| b == b':')?;
    let pass = &auth[colon + 1..];
    let lower = String::from_utf8_lossy(pass).to_ascii_lowercase();
    let dummy = [
        "password", "pass", "passwd", "secret", "pwd", "changeme", "xxx", "****",
    ];
    (!pass.is_empty()
        && !dummy.contains(&lower.as_str())
        && !pass.starts_with(b"$")
        && !pass.starts_with(b"<")
        && !pass.starts_with(b"{")
        && !pass.starts_with(b"%")
        && !pass.iter().all(|&b| b == b'*' || b == b'x' || b == b'X'))
    .then_some(r)
}

/// A private-key block with a body: at least 32 base64 characters besides the BEGIN and
/// END lines (a bare header in a regex or a placeholder block is not a key).
pub(crate) fn private_key(text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    let s = &text[r.clone()];
    let body: usize = s
        .split(|&b| b == b'\n')
        .filter(|line| !line.starts_with(b"-----"))
        .map(|line| {
            line.iter()
                .filter(|&&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
                .count()
        })
        .sum();
    (body >= 32).then_some(r)
}

/// The whole candidate (webhook URLs: the pattern is the check).
#[allow(clippy::unnecessary_wraps, reason = "the validator signature")]
pub(crate) fn whole(_text: &[u8], r: Range<usize>) -> Option<Range<usize>> {
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: fn(&[u8], Range<usize>) -> Option<Range<usize>>, s: &str) -> bool {
        f(s.as_bytes(), 0..s.len()).is_some()
    }

    #[test]
    fn luhn_and_cards() {
        assert!(check(payment_card, "4111 1111 1111 1111"));
        assert!(check(payment_card, "4111111111111111"));
        assert!(check(payment_card, "3782 822463 10005"));
        assert!(!check(payment_card, "4111 1111 1111 1112"));
        assert!(!check(payment_card, "4111-1111 1111 1111"));
        assert!(!check(payment_card, "1234567812345670"));
    }

    #[test]
    fn ibans() {
        assert!(check(iban, "DE89 3704 0044 0532 0130 00"));
        assert!(check(iban, "GB82WEST12345698765432"));
        assert!(!check(iban, "GB82WEST12345698765433"));
        assert!(!check(iban, "ZZ82WEST12345698765432"));
    }

    #[test]
    fn ssns() {
        assert!(check(us_ssn, "536-22-1234"));
        assert!(!check(us_ssn, "666-22-1234"));
        assert!(
            check(us_ssn, "936-22-1234"),
            "taxpayer numbers in the SSN shape"
        );
        assert!(!check(us_ssn, "536-00-1234"));
        assert!(!check(us_ssn, "536-22-0000"));
        assert!(!check(us_ssn, "078-05-1120"));
    }

    #[test]
    fn ips_and_dates() {
        assert!(check(ipv4, "192.168.1.20"));
        assert!(!check(ipv4, "192.168.1.256"));
        assert!(!check(ipv4, "01.2.3.4"));
        assert!(check(ipv6, "2001:db8::8a2e:370:7334"));
        assert!(check(ipv6, "::1"));
        assert!(!check(ipv6, "a::b"));
        assert!(date(b"1985-03-12", 0..10));
        assert!(date(b"12/03/1985", 0..10));
        assert!(date(b"12 March 1985", 0..13));
        assert!(date(b"March 12, 1985", 0..14));
        assert!(!date(b"1985-02-30", 0..10));
        assert!(!date(b"2099-01-01", 0..10));
    }

    #[test]
    fn entropy_orders() {
        assert!(entropy(b"aaaaaaaaaaaaaaaa") < 0.1);
        assert!(entropy(b"k9Xq2LmP7vR4tZ8w") > 3.5);
        assert!(check(
            jwt,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
        ));
    }
}
