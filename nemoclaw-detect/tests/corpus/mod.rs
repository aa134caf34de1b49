//! Ground-truth corpus generator: labelled positives per category embedded in prose,
//! code, JSON, logs and chat, and look-alike negatives that must not fire. Fixed-seed PRNG,
//! so every run sees the same corpus.

use std::cell::Cell;

use nemoclaw_detect::Category;

/// xorshift64*: small, deterministic.
pub struct Rng(Cell<u64>);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(Cell::new(seed | 1))
    }

    /// The next 64 random bits.
    pub fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }

    /// One of the items.
    pub fn pick<T: Copy>(&self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// `n` characters drawn from `alphabet`.
    pub fn chars(&self, alphabet: &str, n: usize) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n).map(|_| a[self.below(a.len())]).collect()
    }

    /// `n` decimal digits.
    pub fn digits(&self, n: usize) -> String {
        self.chars("0123456789", n)
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_NUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const HEX: &str = "0123456789abcdef";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dmitri", "eve", "fatima", "gustav", "hiro", "ines", "jamal", "kim",
    "lena",
];
const LAST: &[&str] = &[
    "smith", "nguyen", "garcia", "mueller", "rossi", "kowalski", "okafor", "tanaka", "dubois",
    "silva",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "acme-corp.io",
    "mail.contoso.co.uk",
    "uni-heidelberg.de",
    "startup.ai",
    "gmail.com",
    "corp.example.org",
];
const WORDS: &[&str] = &[
    "deploy",
    "the",
    "service",
    "after",
    "review",
    "cache",
    "layer",
    "retry",
    "budget",
    "queue",
    "latency",
    "report",
    "weekly",
    "migration",
    "schema",
    "customer",
    "invoice",
    "branch",
    "release",
    "pipeline",
    "metrics",
    "alert",
];

/// One labelled sample: the text and the values it contains, with their byte ranges.
pub struct Sample {
    /// The text.
    pub text: String,
    /// Expected findings: category and byte range of the value.
    pub expected: Vec<(Category, usize, usize)>,
}

/// Embed `value` in a random context of the given style; return the sample.
fn embed(rng: &Rng, category: Category, value: &str, label: &str) -> Sample {
    let filler = |rng: &Rng, n: usize| -> String {
        (0..n)
            .map(|_| rng.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let pre = filler(rng, rng.range(2, 8) as usize);
    let post = filler(rng, rng.range(1, 6) as usize);
    let (before, after) = match rng.below(7) {
        0 => (format!("{pre}: the {label} is "), format!(". {post}.")),
        1 => (
            format!("{{\"{label}\": \""),
            format!("\", \"note\": \"{post}\"}}"),
        ),
        2 => (
            format!("// {pre}\nlet {label} = \""),
            format!("\";\n// {post}\n"),
        ),
        3 => (
            format!("2024-05-02 11:04:17 INFO {pre} {label}="),
            format!(" status=ok {post}"),
        ),
        4 => (
            format!("User: hey, {pre}, my {label} is "),
            format!(" — can you {post}?\nAssistant: sure."),
        ),
        5 => (format!("{label}: "), format!("\n{post}: true\n")),
        _ => (
            format!("Hallo, {pre} ({label} "),
            format!(") — merci, {post} ✓"),
        ),
    };
    let start = before.len();
    let text = format!("{before}{value}{after}");
    Sample {
        text,
        expected: vec![(category, start, start + value.len())],
    }
}

/// A context whose label is the given phrase: used where the detector needs a context word.
fn embed_with_context(rng: &Rng, category: Category, before: &str, value: &str) -> Sample {
    let pre = (0..rng.range(1, 5))
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ");
    let post = (0..rng.range(1, 5))
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ");
    let head = format!("{pre}. {before}");
    let start = head.len();
    Sample {
        text: format!("{head}{value} {post}."),
        expected: vec![(category, start, start + value.len())],
    }
}

fn luhn_complete(rng: &Rng, prefix: &str, len: usize) -> String {
    let mut ds: Vec<u32> = prefix.chars().filter_map(|c| c.to_digit(10)).collect();
    while ds.len() < len - 1 {
        ds.push(rng.range(0, 9));
    }
    let mut sum = 0;
    for (i, d) in ds.iter().rev().enumerate() {
        let mut v = *d;
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ds.push((10 - sum % 10) % 10);
    ds.iter()
        .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
        .collect()
}

fn group(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    for &n in sizes {
        out.push(&s[i..i + n]);
        i += n;
    }
    out.join(sep)
}

/// A payment card, valid or (with `valid == false`) with a wrong check digit.
pub fn card(rng: &Rng, valid: bool) -> String {
    let (prefix, len) = rng.pick(&[
        ("4", 16),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("37", 15),
        ("6011", 16),
        ("3530", 16),
    ]);
    let mut n = luhn_complete(rng, prefix, len);
    if !valid {
        let last = n.pop().and_then(|c| c.to_digit(10)).unwrap_or(0);
        n.push(char::from_digit((last + 1 + rng.range(0, 7)) % 10, 10).unwrap_or('0'));
    }
    let sizes: &[usize] = if len == 15 { &[4, 6, 5] } else { &[4, 4, 4, 4] };
    match rng.below(3) {
        0 => n,
        1 => group(&n, sizes, " "),
        _ => group(&n, sizes, "-"),
    }
}

fn mod97(s: &str) -> u32 {
    let mut rem = 0u32;
    for c in s.chars() {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem
}

/// An IBAN, valid or with a wrong checksum.
pub fn iban(rng: &Rng, valid: bool) -> String {
    let (cc, bban) = match rng.below(6) {
        0 => ("DE", rng.digits(18)),
        1 => (
            "GB",
            format!(
                "{}{}",
                rng.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 4),
                rng.digits(14)
            ),
        ),
        2 => (
            "FR",
            format!("{}{}", rng.digits(10), rng.chars(UPPER_NUM, 13)),
        ),
        3 => (
            "NL",
            format!(
                "{}{}",
                rng.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 4),
                rng.digits(10)
            ),
        ),
        4 => ("ES", rng.digits(20)),
        _ => (
            "IT",
            format!(
                "{}{}{}",
                rng.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1),
                rng.digits(10),
                rng.chars(UPPER_NUM, 12)
            ),
        ),
    };
    let check = 98 - mod97(&format!("{bban}{cc}00"));
    let check = if valid {
        check
    } else {
        (check + 1 + rng.range(0, 50)) % 97 + 2
    };
    let compact = format!("{cc}{check:02}{bban}");
    if rng.below(2) == 0 {
        compact
    } else {
        compact
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A US SSN in a valid range.
pub fn ssn(rng: &Rng) -> (String, bool) {
    let mut area = rng.range(1, 899);
    if area == 666 {
        area = 667;
    }
    let (a, g, s) = (area, rng.range(1, 99), rng.range(1, 9999));
    match rng.below(3) {
        0 => (format!("{a:03}-{g:02}-{s:04}"), false),
        1 => (format!("{a:03} {g:02} {s:04}"), false),
        _ => (format!("{a:03}{g:02}{s:04}"), true),
    }
}

fn b64url(bytes: &[u8]) -> String {
    let a: Vec<char> = B64URL.chars().collect();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let take = chunk.len() + 1;
        for i in 0..take {
            out.push(a[((n >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    out
}

/// A secret in one of the known formats, with the text around it when the format needs a
/// context (key word, variable name).
fn secret(rng: &Rng) -> Sample {
    let s = Category::Secret;
    match rng.below(25) {
        0 => embed(
            rng,
            s,
            &format!("AKIA{}", rng.chars(UPPER_NUM, 16)),
            "aws_access_key_id",
        ),
        1 => {
            let v = rng.chars(B64, 40);
            embed_with_context(rng, s, "aws_secret_access_key = ", &v)
        }
        2 => embed(rng, s, &format!("ghp_{}", rng.chars(ALNUM, 36)), "token"),
        3 => embed(
            rng,
            s,
            &format!(
                "github_pat_{}_{}",
                rng.chars(ALNUM, 22),
                rng.chars(ALNUM, 59)
            ),
            "gh",
        ),
        4 => embed(rng, s, &format!("glpat-{}", rng.chars(ALNUM, 20)), "gitlab"),
        5 => embed(
            rng,
            s,
            &format!(
                "xoxb-{}-{}-{}",
                rng.digits(12),
                rng.digits(13),
                rng.chars(ALNUM, 24)
            ),
            "slack",
        ),
        6 => embed(
            rng,
            s,
            &format!("sk_live_{}", rng.chars(ALNUM, 24)),
            "stripe",
        ),
        7 => embed(
            rng,
            s,
            &format!("sk-proj-{}", rng.chars(&format!("{ALNUM}_-"), 120)),
            "openai",
        ),
        8 => embed(
            rng,
            s,
            &format!("sk-ant-api03-{}", rng.chars(&format!("{ALNUM}_-"), 93)),
            "anthropic",
        ),
        9 => embed(
            rng,
            s,
            &format!("AIza{}", rng.chars(&format!("{ALNUM}_-"), 35)),
            "google",
        ),
        10 => embed(rng, s, &format!("SK{}", rng.chars(HEX, 32)), "twilio"),
        11 => embed(
            rng,
            s,
            &format!(
                "SG.{}.{}",
                rng.chars(&format!("{ALNUM}_-"), 22),
                rng.chars(&format!("{ALNUM}_-"), 43)
            ),
            "sendgrid",
        ),
        12 => embed(rng, s, &format!("npm_{}", rng.chars(ALNUM, 36)), "npm"),
        13 => embed(
            rng,
            s,
            &format!(
                "pypi-AgEIcHlwaS5vcmc{}",
                rng.chars(&format!("{ALNUM}_-"), 70)
            ),
            "pypi",
        ),
        14 => embed(rng, s, &format!("hf_{}", rng.chars(ALNUM, 34)), "hf"),
        15 => {
            let kind = rng.pick(&["RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED "]);
            let body: Vec<String> = (0..rng.range(3, 8)).map(|_| rng.chars(B64, 64)).collect();
            let v = format!(
                "-----BEGIN {kind}PRIVATE KEY-----\n{}\n-----END {kind}PRIVATE KEY-----",
                body.join("\n")
            );
            let head = "Here is the deploy key, please check why ssh refuses it:\n\n";
            Sample {
                text: format!("{head}{v}\n\nThanks!"),
                expected: vec![(s, head.len(), head.len() + v.len())],
            }
        }
        16 => {
            let alg = rng.pick(&["HS256", "RS256", "ES384"]);
            let header = b64url(format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}").as_bytes());
            let payload = b64url(
                format!(
                    "{{\"sub\":\"{}\",\"iat\":{}}}",
                    rng.digits(8),
                    rng.digits(10)
                )
                .as_bytes(),
            );
            let v = format!("{header}.{payload}.{}", rng.chars(B64URL, 43));
            embed_with_context(rng, s, "Authorization: Bearer ", &v)
        }
        17 => {
            let scheme = rng.pick(&[
                "postgres",
                "postgresql",
                "mysql",
                "mongodb+srv",
                "redis",
                "amqp",
            ]);
            let v = format!(
                "{scheme}://{}:{}@db-{}.internal.example.net:5432",
                rng.pick(FIRST),
                rng.chars(ALNUM, 14),
                rng.digits(2)
            );
            embed(rng, s, &v, "DATABASE_URL")
        }
        18 => {
            let v = rng.chars(&format!("{ALNUM}!#%&*+"), rng.below(10) + 12);
            let v = format!("{v}7aZ!");
            let key = rng.pick(&[
                "password = \"",
                "PASSWORD=",
                "\"password\": \"",
                "db_password: ",
                "passwd=",
            ]);
            embed_with_context(rng, s, key, &v)
        }
        19 => {
            let v = rng.chars(ALNUM, 32);
            let key = rng.pick(&[
                "api_key = \"",
                "API_KEY=",
                "\"apiKey\": \"",
                "client_secret: ",
                "\"token\": \"",
            ]);
            embed_with_context(rng, s, key, &format!("{v}9"))
        }
        20 => {
            let v = rng.chars(HEX, 40);
            embed_with_context(rng, s, "SECRET_TOKEN=", &v)
        }
        22 => {
            let user = rng.pick(FIRST);
            let pass = rng.chars(ALNUM, 12);
            let v = b64url(format!("{user}:{pass}").as_bytes())
                .replace('-', "+")
                .replace('_', "/");
            embed_with_context(rng, s, "Authorization: Basic ", &format!("{v}=="))
        }
        23 => {
            let v = format!(
                "redis://:{}@cache-{}.internal:6379",
                rng.chars(ALNUM, 20),
                rng.digits(2)
            );
            embed(rng, s, &v, "REDIS_URL")
        }
        24 => {
            let v = format!("{}==", rng.chars(B64, 30));
            embed_with_context(rng, s, "\"refresh_token\": \"", &v)
        }
        _ => embed(rng, s, &format!("ASIA{}", rng.chars(UPPER_NUM, 16)), "key"),
    }
}

/// A positive sample of the category.
pub fn positive(rng: &Rng, category: &Category) -> Sample {
    match category {
        Category::Email => {
            let v = match rng.below(5) {
                0 => format!(
                    "{}.{}@{}",
                    rng.pick(FIRST),
                    rng.pick(LAST),
                    rng.pick(DOMAINS)
                ),
                1 => format!(
                    "{}_{}+{}@{}",
                    rng.pick(FIRST),
                    rng.pick(LAST),
                    rng.pick(WORDS),
                    rng.pick(DOMAINS)
                ),
                2 => format!("{}{}@{}", rng.pick(FIRST), rng.digits(2), rng.pick(DOMAINS))
                    .to_uppercase(),
                3 => format!("{}@{}", rng.pick(LAST), rng.pick(DOMAINS)),
                _ => format!(
                    "{}@{}",
                    rng.pick(&["jürgen.weiß", "łukasz", "zoë.brontë", "josé"]),
                    rng.pick(DOMAINS)
                ),
            };
            embed(rng, Category::Email, &v, "email")
        }
        Category::Phone => {
            let nanp = |rng: &Rng| (rng.range(201, 989), rng.range(200, 999), rng.digits(4));
            let v = match rng.below(15) {
                0 => format!("+44 20 {} {}", rng.digits(4), rng.digits(4)),
                1 => format!(
                    "+33 6 {} {} {} {}",
                    rng.digits(2),
                    rng.digits(2),
                    rng.digits(2),
                    rng.digits(2)
                ),
                2 => format!("+49 30 {}", rng.digits(8)),
                3 => {
                    let (a, e, s) = nanp(rng);
                    format!("+1-{a}-{e}-{s}")
                }
                4 => format!("+81 3-{}-{}", rng.digits(4), rng.digits(4)),
                5 => {
                    let (a, e, s) = nanp(rng);
                    format!("({a}) {e}-{s}")
                }
                6 => {
                    let (a, e, s) = nanp(rng);
                    format!("{a}-{e}-{s}")
                }
                7 => {
                    let (a, e, s) = nanp(rng);
                    format!("{a}.{e}.{s}")
                }
                8 => format!("020 {} {}", rng.digits(4), rng.digits(4)),
                9 => format!(
                    "0{} {} {} {} {}",
                    rng.range(1, 7),
                    rng.digits(2),
                    rng.digits(2),
                    rng.digits(2),
                    rng.digits(2)
                ),
                10 => format!(
                    "0{} {}",
                    rng.pick(&["171", "151", "30", "89"]),
                    rng.digits(7)
                ),
                11 => {
                    let (a, e, s) = nanp(rng);
                    format!("+1 ({a}) {e}-{s}")
                }
                12 => format!("+44 (0)20 {} {}", rng.digits(4), rng.digits(4)),
                13 => {
                    let (a, e, s) = nanp(rng);
                    format!("+1{a}{e}{s}")
                }
                _ => format!("+{}{}", rng.pick(&["41", "31", "46", "39"]), rng.digits(9)),
            };
            embed(rng, Category::Phone, &v, "phone")
        }
        Category::PaymentCard => {
            let v = card(rng, true);
            embed(rng, Category::PaymentCard, &v, "card")
        }
        Category::Iban => {
            let v = iban(rng, true);
            embed(rng, Category::Iban, &v, "iban")
        }
        Category::UsSsn => {
            let (v, needs_context) = ssn(rng);
            if needs_context {
                embed_with_context(rng, Category::UsSsn, "SSN: ", &v)
            } else {
                embed(rng, Category::UsSsn, &v, "ssn")
            }
        }
        Category::IpAddress => {
            let g = |rng: &Rng| format!("{}{}", rng.chars("123456789abcdef", 1), rng.chars(HEX, 3));
            let v = match rng.below(6) {
                0 => format!("192.168.{}.{}", rng.range(0, 255), rng.range(1, 254)),
                1 => format!(
                    "10.{}.{}.{}",
                    rng.range(0, 255),
                    rng.range(0, 255),
                    rng.range(1, 254)
                ),
                2 => format!(
                    "{}.{}.{}.{}",
                    rng.range(11, 223),
                    rng.range(0, 255),
                    rng.range(0, 255),
                    rng.range(1, 254)
                ),
                3 => format!("2001:db8:{}::{}", g(rng), g(rng)),
                4 => format!("fe80::{}:{}:{}:{}", g(rng), g(rng), g(rng), g(rng)),
                _ => {
                    // In a URL, a route, an ssh target: the address part.
                    let ip = format!(
                        "172.{}.{}.{}",
                        rng.range(16, 31),
                        rng.range(0, 255),
                        rng.range(1, 254)
                    );
                    let head = rng.pick(&["curl http://", "route ", "allow from ", "ssh deploy@"]);
                    let tail = rng.pick(&[":8080/health", "/24 via eth0", " only", " -p 22"]);
                    let text = format!("{head}{ip}{tail}");
                    let expected = vec![(Category::IpAddress, head.len(), head.len() + ip.len())];
                    return Sample { text, expected };
                }
            };
            let label = rng.pick(&["host", "server", "client ip", "peer"]);
            embed(rng, Category::IpAddress, &v, label)
        }
        Category::DateOfBirth => {
            let (y, m, d) = (rng.range(1940, 2008), rng.range(1, 12), rng.range(1, 28));
            let months = [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ];
            let month = months[(m - 1) as usize];
            let v = match rng.below(7) {
                0 => format!("{y}-{m:02}-{d:02}"),
                1 => format!("{d:02}/{m:02}/{y}"),
                5 => format!("{d:02}.{m:02}.{y}"),
                6 => format!("{m}/{d}/{y}"),
                2 => format!("{m:02}/{d:02}/{y}"),
                3 => format!("{d} {month} {y}"),
                _ => format!("{month} {d}, {y}"),
            };
            let ctx = rng.pick(&[
                "Date of birth: ",
                "born on ",
                "DOB ",
                "\"dob\": \"",
                "birthday: ",
                "Patient (born ",
                "date_of_birth=",
                "Geburtsdatum: ",
                "D.O.B. ",
            ]);
            embed_with_context(rng, Category::DateOfBirth, ctx, &v)
        }
        Category::Secret => secret(rng),
        Category::Code | Category::Custom(_) => Sample {
            text: String::new(),
            expected: Vec::new(),
        },
    }
}

/// A look-alike that must not fire.
pub fn negative(rng: &Rng) -> String {
    let w = |rng: &Rng| rng.pick(WORDS);
    match rng.below(51) {
        0 => format!(
            "request id {}-{}-4{}-a{}-{}",
            rng.chars(HEX, 8),
            rng.chars(HEX, 4),
            rng.chars(HEX, 3),
            rng.chars(HEX, 3),
            rng.chars(HEX, 12)
        ),
        1 => format!("commit {} {} the {}", rng.chars(HEX, 40), w(rng), w(rng)),
        2 => format!("image: sha256:{}", rng.chars(HEX, 64)),
        3 => format!("data:image/png;base64,{}", rng.chars(B64, 120)),
        4 => format!(
            "upgrade to version {}.{}.{}.{} tonight",
            rng.range(1, 9),
            rng.range(0, 20),
            rng.range(0, 9),
            rng.range(0, 99)
        ),
        5 => format!(
            "Windows 10.0.{} build, node v{}.{}.{}",
            rng.range(10000, 22631),
            rng.range(12, 22),
            rng.range(0, 20),
            rng.range(0, 9)
        ),
        6 => format!("Order #{} shipped on {}", rng.digits(9), w(rng)),
        7 => format!("ORD-{}-{} is pending", rng.digits(6), rng.digits(6)),
        8 => format!(
            "at 2024-0{}-1{}T10:{}:2{}Z the {} ran",
            rng.range(1, 9),
            rng.range(0, 9),
            rng.range(10, 59),
            rng.range(0, 9),
            w(rng)
        ),
        9 => format!(
            "ts={} elapsed_ms={}",
            1_700_000_000 + rng.range(0, 99_999_999),
            rng.range(0, 99_999)
        ),
        10 => format!("card {}", card(rng, false)),
        11 => format!("IBAN {}", iban(rng, false)),
        12 => {
            let v = match rng.below(5) {
                0 => format!("000-{:02}-{:04}", rng.range(1, 99), rng.range(1, 9999)),
                1 => format!("666-{:02}-{:04}", rng.range(1, 99), rng.range(1, 9999)),
                // The advertising and example numbers (areas 900-999 are reported: taxpayer
                // numbers in the SSN shape).
                2 => ["078-05-1120", "219-09-9999", "457-55-5462", "123-45-6789"][rng.below(4)]
                    .to_owned(),
                3 => format!("{:03}-00-{:04}", rng.range(1, 665), rng.range(1, 9999)),
                _ => format!("{:03}-{:02}-0000", rng.range(1, 665), rng.range(1, 99)),
            };
            format!("ssn field {v} is a test value")
        }
        13 => format!(
            "release {} on {}-0{}-1{}",
            w(rng),
            rng.range(2019, 2025),
            rng.range(1, 9),
            rng.range(0, 9)
        ),
        14 => format!("{} {} {} {}", w(rng), w(rng), w(rng), w(rng)),
        15 => format!("contact admin@localhost or {}@{}", w(rng), w(rng)),
        16 => format!(
            "npm install lodash@4.17.{} react@18.{}.0",
            rng.range(0, 30),
            rng.range(0, 3)
        ),
        17 => "use std::io::Result; let v = Vec::new(); a::b::c()".to_owned(),
        18 => format!(
            "color: #{}; margin: {}px",
            rng.chars(HEX, 6),
            rng.range(0, 40)
        ),
        19 => format!(
            "ISBN 978-3-16-{}-0 and price ${},{}.{}",
            rng.digits(6),
            rng.range(1, 9),
            rng.digits(3),
            rng.digits(2)
        ),
        20 => format!(
            "coordinates {}.{}, {}.{}",
            rng.range(1, 89),
            rng.digits(4),
            rng.range(1, 179),
            rng.digits(4)
        ),
        21 => {
            "password: ${DB_PASSWORD} and token = get_token() and api_key = os.environ['API_KEY']"
                .to_owned()
        }
        22 => format!(
            "the {} token expired; passwords must be at least 12 characters",
            w(rng)
        ),
        23 => format!("secret: <your-secret-here>, password={}", w(rng)),
        24 => format!("icon@2x.png and logo@3x.png in {}", w(rng)),
        25 => format!(
            "listening on port {} with {} workers, pid {}",
            rng.range(1024, 65535),
            rng.range(1, 64),
            rng.digits(5)
        ),
        26 => format!("sk-learn is a library; the {} task-list", w(rng)),
        27 => format!(
            "tests took {}.{}s; {} of {} passed ({}%)",
            rng.range(1, 99),
            rng.digits(3),
            rng.range(1, 999),
            rng.range(1000, 2000),
            rng.range(1, 99)
        ),
        28 => format!(
            "MAC {}:{}:{}:{}:{}:{}",
            rng.chars(HEX, 2),
            rng.chars(HEX, 2),
            rng.chars(HEX, 2),
            rng.chars(HEX, 2),
            rng.chars(HEX, 2),
            rng.chars(HEX, 2)
        ),
        29 => format!(
            "tracking 1Z{}{} via UPS",
            rng.chars(UPPER_NUM, 6),
            rng.digits(10)
        ),
        30 => format!(
            "Invoice INV-{}-{} due",
            rng.range(2019, 2025),
            rng.digits(6)
        ),
        31 => format!("call extension {} or room {}", rng.digits(4), rng.digits(3)),
        32 => format!(
            "reference {}{} in the ledger",
            rng.range(7, 9),
            rng.digits(15)
        ),
        33 => format!(
            "at {}:{}:{} on {:02}/{:02}/{} the backup finished",
            rng.range(10, 23),
            rng.range(10, 59),
            rng.range(10, 59),
            rng.range(1, 28),
            rng.range(1, 12),
            rng.range(2000, 2025)
        ),
        34 => format!(
            "between {} and {} the {} grew",
            rng.range(1950, 1990),
            rng.range(1991, 2020),
            w(rng)
        ),
        35 => {
            let header = b64url(b"{\"typ\":\"text\",\"v\":1}");
            format!(
                "cursor {header}.eyJ{}.{}",
                rng.chars(B64URL, 20),
                rng.chars(B64URL, 10)
            )
        }
        36 => format!(
            "DATABASE_URL=postgres://localhost:5432/{} and postgres://app@db/{}",
            w(rng),
            w(rng)
        ),
        37 => format!(
            "see https://example.com/{}/{}?page={}",
            w(rng),
            w(rng),
            rng.range(1, 99)
        ),
        38 => format!(
            "token: null, secret: true, password_reset_link: /reset/{}",
            rng.digits(4)
        ),
        39 => format!(
            "const timeout = {}; let retries = {}; pi = 3.14159; e = 2.71828",
            rng.range(1000, 60000),
            rng.range(1, 9)
        ),
        40 => format!(
            "bad ip {}.168.1.1 and 1.2.3 and Version: 2.0.0.{}",
            rng.range(256, 999),
            rng.range(1, 9)
        ),
        41 => format!(
            "aws_secret_access_key = <redacted>; api_key=YOUR_API_KEY_HERE; token={}",
            w(rng)
        ),
        42 => format!("sha1 {} md5 {}", rng.chars(HEX, 40), rng.chars(HEX, 32)),
        43 => format!("blob {}", rng.chars(B64, 88)),
        44 => format!(
            "pip install requests=={}.{}.{}.{}",
            rng.range(1, 3),
            rng.range(0, 31),
            rng.range(0, 9),
            rng.range(0, 9)
        ),
        45 => format!(
            "{} rows in {} ms, p99 {} ms, {} bytes",
            rng.digits(7),
            rng.range(1, 999),
            rng.range(1, 999),
            rng.digits(10)
        ),
        46 => format!(
            "The {} {} at 3 Main Street, room 1204, floor 12",
            w(rng),
            w(rng)
        ),
        47 => format!("account number 4{} on file", rng.digits(15)),
        48 => rng
            .pick(&[
                "token = self.tokens[idx]",
                "api_key = config.api_key_value",
                "secret = getSecretFromVault(name)",
                "password = request.form['password']",
                "accessToken = accessTokenValue;",
                "const token = await fetchAuthToken(userId);",
                "if password == confirm_password_input:",
            ])
            .to_owned(),
        49 => rng
            .pick(&[
                "http://localhost:3000/api/users/@me",
                "https://example.com:8443/path/to/page",
                "git clone git@github.com:org/repo.git",
                "ssh deploy@build-server -p 22",
            ])
            .to_owned(),
        _ => format!(
            "meeting on {} March {} about the {}",
            rng.range(1, 28),
            rng.range(1990, 2024),
            w(rng)
        ),
    }
}
