//! Filesystem control: `file_open` and the `path_*` hooks judge the resolved path (and the
//! inode of files under deny rules). Each test is a known way around path rules; it must
//! fail with `EACCES` and an audit record naming the real path and the rule, while its
//! allowed twin in the same sandbox succeeds.
//!
//! Every denied target is readable and writable for `nobody` by mode (0666 files, 0777
//! directories), so an `EACCES` can only come from `NemoClaw`, and the audit record proves it.

mod metadata;

use std::{collections::BTreeMap, os::unix::fs::PermissionsExt as _, path::Path};

mod renames;

use crate::support::{
    FullPreemption, Outcome, PYTHON, Scratch, contend, lsm_or_skip, run_sandboxed,
};

/// The probe prelude: `t(label, f)` prints `label OK value` or `label ERR ERRNO`.
const PRELUDE: &str = r"
import ctypes, errno, os, sys
def t(label, f):
    try:
        r = f()
        print(label, 'OK', '' if r is None else r, flush=True)
    except OSError as e:
        print(label, 'ERR', errno.errorcode.get(e.errno, e.errno), flush=True)
def rd(p, **kw):
    with open(p, **kw) as f:
        return f.read().strip()
";

/// The test's file tree (created by root before the sandbox starts).
struct Tree {
    scratch: Scratch,
    base: String,
}

impl Tree {
    fn new(name: &str) -> Self {
        let scratch = Scratch::new(&format!("fs-{name}"));
        let base = scratch.0.to_str().expect("UTF-8 scratch path").to_owned();
        let tree = Self { scratch, base };
        set_mode(&tree.scratch.0, 0o755);
        for dir in ["ws", "pub", "pub/secret", "ro"] {
            tree.dir(dir);
        }
        tree.file("ws/plain", "plain-ws");
        tree.file("pub/plain", "plain-pub");
        tree.file("pub/secret/key", "SECRET");
        tree.file("ro/file", "read-only");
        tree.file("other", "no rule names me");
        tree
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    fn dir(&self, rel: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).expect("create dir");
        set_mode(Path::new(&p), 0o777);
    }

    fn file(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::write(&p, content).expect("write file");
        set_mode(Path::new(&p), 0o666);
    }

    /// The policy every test runs under.
    fn policy(&self) -> String {
        let b = &self.base;
        format!(
            "filesystem:\n  allow:\n    - \"{b}/ws/**\"\n    - {{path: \"{b}/pub/**\", access: read}}\n  \
             read_only:\n    - /usr/**\n    - /etc/**\n    - /proc/**\n    - /dev/**\n    - \"{b}/ro/**\"\n  \
             deny:\n    - \"{b}/pub/secret/**\"\n    - \"{b}/ws/proj/private/**\"\n    - \"**/id_rsa\"\n    - \"**/.git/config\"\n"
        )
    }

    /// Runs `body` (after the prelude) in the sandbox, `python3 -I` so that the working
    /// directory is not on `sys.path` (its listing would be an unrelated denial).
    fn run(&self, body: &str) -> Outcome {
        let script = format!("{PRELUDE}\nB = {:?}\n{body}", self.base);
        run_sandboxed(
            &self.scratch,
            &self.policy(),
            &[PYTHON, "-I", "-c", &script],
        )
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `label -> "OK value"` or `"ERR ERRNO"`.
fn results(out: &Outcome) -> BTreeMap<String, String> {
    out.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(label, rest)| (label.to_owned(), rest.trim().to_owned()))
        .collect()
}

fn expect(out: &Outcome, label: &str, want: &str) {
    let got = results(out);
    assert_eq!(
        got.get(label).map(String::as_str),
        Some(want),
        "{label}: {out:#?}"
    );
}

/// Asserts one filesystem audit record with this hook, path and rule text.
fn expect_audit(out: &Outcome, hook: &str, path: &str, rule_text: &str) {
    expect_audit_errno(out, hook, path, rule_text, "EACCES");
}

/// Asserts one filesystem audit record with this hook, path, rule text and errno.
fn expect_audit_errno(out: &Outcome, hook: &str, path: &str, rule_text: &str, errno: &str) {
    let found = out.denials("filesystem").into_iter().any(|r| {
        r["hook"] == hook
            && r["errno"] == errno
            && r["object"]["path"] == path
            && r["rule"]["text"] == rule_text
            && r["uid"] == 65534
    });
    assert!(
        found,
        "no {hook} {errno} denial of {path} citing {rule_text:?}: {out:#?}"
    );
}

/// Asserts that no filesystem denial names `path` (the allowed twins).
fn expect_no_audit(out: &Outcome, path: &str) {
    let hits: Vec<_> = out
        .denials("filesystem")
        .into_iter()
        .filter(|r| r["object"]["path"] == path)
        .collect();
    assert!(hits.is_empty(), "unexpected denial of {path}: {hits:#?}");
}

fn secret_rule(tree: &Tree) -> String {
    format!("{}/pub/secret/**", tree.base)
}

/// A denied file, a file no rule names (default deny) and a write to a read-only file are
/// refused with `EACCES` and audited; reading the read-only tree and the workspace works.
#[test]
fn fs_denied_file_and_default_deny_with_allowed_twins() {
    if !lsm_or_skip("fs_denied_file") {
        return;
    }
    let tree = Tree::new("basic");
    let out = tree.run(
        "t('secret', lambda: rd(B + '/pub/secret/key'))\n\
         t('other', lambda: rd(B + '/other'))\n\
         t('pub', lambda: rd(B + '/pub/plain'))\n\
         t('pubwrite', lambda: open(B + '/pub/plain', 'a'))\n\
         t('ws', lambda: rd(B + '/ws/plain'))\n",
    );
    expect(&out, "secret", "ERR EACCES");
    expect(&out, "other", "ERR EACCES");
    expect(&out, "pub", "OK plain-pub");
    expect(&out, "pubwrite", "ERR EACCES");
    expect(&out, "ws", "OK plain-ws");
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
    expect_audit(
        &out,
        "file_open",
        &tree.path("other"),
        "default deny (no rule allows this)",
    );
    // `pub` is allowed for reading only: opening for append is a write, denied by default.
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/plain"),
        "default deny (no rule allows this)",
    );
    expect_no_audit(&out, &tree.path("ws/plain"));
    assert_eq!(out.code, Some(0), "{out:#?}");
}

/// `/dir/name*/**` rules (`OpenClaw`'s `/tmp/openclaw-<uid>` directories): the kernel's prefix
/// trie holds them as byte prefixes. Entries whose names start with the prefix are allowed,
/// created and written beneath; a longer denied prefix inside wins; a name that does not
/// start with the prefix falls to the default deny.
#[test]
fn fs_name_prefix_rules_allow_and_deny_by_byte_prefix() {
    if !lsm_or_skip("fs_name_prefix") {
        return;
    }
    let tree = Tree::new("prefix");
    // Writable by mode, so that creating `oc-new` is NemoClaw's decision alone.
    set_mode(&tree.scratch.0, 0o777);
    for dir in ["oc-1", "oc-secret-2", "ocx"] {
        tree.dir(dir);
    }
    tree.file("oc-1/state", "state-1");
    tree.file("oc-secret-2/key", "SECRET");
    tree.file("ocx/file", "no rule names me");
    let b = &tree.base;
    let policy = format!(
        "filesystem:\n  allow:\n    - \"{b}/oc-*/**\"\n  \
         read_only:\n    - /usr/**\n    - /etc/**\n    - /proc/**\n    - /dev/**\n  \
         deny:\n    - \"{b}/oc-secret*/**\"\n"
    );
    let script = format!(
        "{PRELUDE}\nB = {b:?}\n\
         t('state', lambda: rd(B + '/oc-1/state'))\n\
         t('mkdir', lambda: os.mkdir(B + '/oc-new'))\n\
         t('create', lambda: open(B + '/oc-new/lock', 'w').write('x'))\n\
         t('secret', lambda: rd(B + '/oc-secret-2/key'))\n\
         t('other', lambda: rd(B + '/ocx/file'))\n"
    );
    let out = run_sandboxed(&tree.scratch, &policy, &[PYTHON, "-I", "-c", &script]);
    expect(&out, "state", "OK state-1");
    expect(&out, "mkdir", "OK");
    expect(&out, "create", "OK 1");
    expect(&out, "secret", "ERR EACCES");
    expect(&out, "other", "ERR EACCES");
    expect_audit(
        &out,
        "file_open",
        &tree.path("oc-secret-2/key"),
        &format!("{b}/oc-secret*/**"),
    );
    expect_audit(
        &out,
        "file_open",
        &tree.path("ocx/file"),
        "default deny (no rule allows this)",
    );
    expect_no_audit(&out, &tree.path("oc-1/state"));
    expect_no_audit(&out, &tree.path("oc-new/lock"));
    assert!(Path::new(&tree.path("oc-new/lock")).exists());
}

/// A symlink made in the workspace to a denied file: the kernel judges the link's target, so
/// the read is denied and the record names the target; a link to an allowed file reads.
/// Peer: Falco #2203 (rules that match the name used, not the file reached).
#[test]
fn fs_escape_symlink_in_workspace_to_denied_file() {
    if !lsm_or_skip("fs_escape_symlink") {
        return;
    }
    let tree = Tree::new("symlink");
    let out = tree.run(
        "t('mk', lambda: os.symlink(B + '/pub/secret/key', B + '/ws/link'))\n\
         t('via', lambda: rd(B + '/ws/link'))\n\
         t('mk2', lambda: os.symlink(B + '/pub/plain', B + '/ws/link2'))\n\
         t('via2', lambda: rd(B + '/ws/link2'))\n",
    );
    expect(&out, "mk", "OK");
    expect(&out, "via", "ERR EACCES");
    expect(&out, "mk2", "OK");
    expect(&out, "via2", "OK plain-pub");
    // The kernel judged the symlink's target, not the name in the workspace.
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
    expect_no_audit(&out, &tree.path("ws/link"));
}

/// A hard link to a denied file, made in the workspace before the sandbox starts: the path
/// rules see only the workspace name, and the file's (device, inode) under the deny rule
/// still refuses the read and the write; a hard link to a workspace file reads.
/// Peer: KubeArmor #988 (a hard link gives a protected inode an accessible path).
#[test]
fn fs_escape_hard_link_created_outside_beforehand() {
    if !lsm_or_skip("fs_escape_hard_link") {
        return;
    }
    let tree = Tree::new("hardlink");
    // Made by root before the sandbox exists: the path rules see only the workspace name.
    std::fs::hard_link(tree.path("pub/secret/key"), tree.path("ws/hl")).expect("hard link");
    std::fs::hard_link(tree.path("ws/plain"), tree.path("ws/hl2")).expect("hard link");
    let out = tree.run(
        "t('hl', lambda: rd(B + '/ws/hl'))\n\
         t('hlw', lambda: open(B + '/ws/hl', 'w'))\n\
         t('hl2', lambda: rd(B + '/ws/hl2'))\n",
    );
    expect(&out, "hl", "ERR EACCES");
    expect(&out, "hlw", "ERR EACCES");
    expect(&out, "hl2", "OK plain-ws");
    // Denied by the (device, inode) key of the file under the deny rule.
    expect_audit(&out, "file_open", &tree.path("ws/hl"), &secret_rule(&tree));
    assert_eq!(
        std::fs::read_to_string(tree.path("pub/secret/key")).expect("read"),
        "SECRET"
    );
}

/// A denied file opened through `/proc/self/root`: denied, the record naming the real path;
/// the allowed twin through the same prefix reads.
/// Peer: Falco #2203 (`/proc/self/root` among its symlink bypasses).
#[test]
fn fs_escape_proc_self_root() {
    if !lsm_or_skip("fs_escape_proc_self_root") {
        return;
    }
    let tree = Tree::new("procroot");
    let out = tree.run(
        "t('deny', lambda: rd('/proc/self/root' + B + '/pub/secret/key'))\n\
         t('twin', lambda: rd('/proc/self/root' + B + '/pub/plain'))\n",
    );
    expect(&out, "deny", "ERR EACCES");
    expect(&out, "twin", "OK plain-pub");
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
}

/// A denied file opened relative to a descriptor of its allowed parent directory
/// (`openat(dirfd, "secret/key")`): denied; the twin relative to the same descriptor reads.
#[test]
fn fs_escape_relative_openat_from_dirfd() {
    if !lsm_or_skip("fs_escape_openat_dirfd") {
        return;
    }
    let tree = Tree::new("dirfd");
    let out = tree.run(
        "d = os.open(B + '/pub', os.O_RDONLY | os.O_DIRECTORY)\n\
         t('deny', lambda: os.read(os.open('secret/key', os.O_RDONLY, dir_fd=d), 64).decode())\n\
         t('twin', lambda: os.read(os.open('plain', os.O_RDONLY, dir_fd=d), 64).decode())\n",
    );
    expect(&out, "deny", "ERR EACCES");
    expect(&out, "twin", "OK plain-pub");
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
}

/// A denied file named through `..` components from the workspace
/// (`ws/../pub/secret/../secret/key`): judged by the resolved path and denied; the twin
/// through `..` reads.
/// Peer: Falco #2203 (`../` through a symlinked directory defeats its path normalisation).
#[test]
fn fs_escape_dotdot_traversal() {
    if !lsm_or_skip("fs_escape_dotdot") {
        return;
    }
    let tree = Tree::new("dotdot");
    let out = tree.run(
        "t('deny', lambda: rd(B + '/ws/../pub/secret/../secret/key'))\n\
         t('twin', lambda: rd(B + '/ws/../pub/plain'))\n",
    );
    expect(&out, "deny", "ERR EACCES");
    expect(&out, "twin", "OK plain-pub");
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
}

/// Renaming a denied file into the workspace, or a workspace file into the denied tree: both
/// denied, the key stays where it was; a rename within the workspace works.
#[test]
fn fs_escape_rename_denied_file_into_workspace() {
    if !lsm_or_skip("fs_escape_rename") {
        return;
    }
    let tree = Tree::new("rename");
    let out = tree.run(
        "t('deny', lambda: os.rename(B + '/pub/secret/key', B + '/ws/key'))\n\
         t('into', lambda: os.rename(B + '/ws/plain', B + '/pub/secret/planted'))\n\
         t('twin', lambda: os.rename(B + '/ws/plain', B + '/ws/moved'))\n\
         t('read', lambda: rd(B + '/ws/moved'))\n",
    );
    expect(&out, "deny", "ERR EACCES");
    expect(&out, "into", "ERR EACCES");
    expect(&out, "twin", "OK");
    expect(&out, "read", "OK plain-ws");
    expect_audit(
        &out,
        "path_rename",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
    expect_audit(
        &out,
        "path_rename",
        &tree.path("pub/secret/planted"),
        &secret_rule(&tree),
    );
    assert_eq!(
        std::fs::read_to_string(tree.path("pub/secret/key")).expect("still there"),
        "SECRET"
    );
    assert!(!Path::new(&tree.path("ws/key")).exists());
}

/// An `O_PATH` descriptor of a denied file (which opens nothing) reopened for reading through
/// `/proc/self/fd`: denied; the twin's reopen reads.
#[test]
fn fs_escape_o_path_reopen_via_proc_fd() {
    if !lsm_or_skip("fs_escape_o_path") {
        return;
    }
    let tree = Tree::new("opath");
    let out = tree.run(
        "def reopen(p):\n    \
             fd = os.open(p, os.O_PATH)\n    \
             return rd('/proc/self/fd/%d' % fd)\n\
         t('deny', lambda: reopen(B + '/pub/secret/key'))\n\
         t('twin', lambda: reopen(B + '/pub/plain'))\n",
    );
    expect(&out, "deny", "ERR EACCES");
    expect(&out, "twin", "OK plain-pub");
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
}

/// `openat2` with `RESOLVE_BENEATH` or `RESOLVE_IN_ROOT` from the denied file's parent: the
/// resolve flags change nothing, the open is denied; the twins with the same flags read.
#[test]
fn fs_escape_openat2_resolve_flags() {
    if !lsm_or_skip("fs_escape_openat2") {
        return;
    }
    let tree = Tree::new("openat2");
    // openat2(2) through ctypes: struct open_how { u64 flags, mode, resolve }.
    let out = tree.run(
        "libc = ctypes.CDLL(None, use_errno=True)\n\
         class How(ctypes.Structure):\n    \
             _fields_ = [('flags', ctypes.c_uint64), ('mode', ctypes.c_uint64), ('resolve', ctypes.c_uint64)]\n\
         def openat2(dirfd, path, resolve):\n    \
             how = How(os.O_RDONLY, 0, resolve)\n    \
             fd = libc.syscall(437, dirfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))\n    \
             if fd < 0:\n        \
                 e = ctypes.get_errno()\n        \
                 raise OSError(e, os.strerror(e))\n    \
             return os.read(fd, 64).decode()\n\
         d = os.open(B + '/pub', os.O_RDONLY | os.O_DIRECTORY)\n\
         NO_XDEV, NO_MAGICLINKS, NO_SYMLINKS, BENEATH, IN_ROOT = 1, 2, 4, 8, 16\n\
         t('beneath', lambda: openat2(d, 'secret/key', BENEATH | NO_SYMLINKS | NO_MAGICLINKS))\n\
         t('inroot', lambda: openat2(d, '/secret/key', IN_ROOT | NO_XDEV))\n\
         t('twin', lambda: openat2(d, 'plain', BENEATH | NO_SYMLINKS | NO_MAGICLINKS))\n\
         t('twin2', lambda: openat2(d, '/plain', IN_ROOT | NO_XDEV))\n",
    );
    expect(&out, "beneath", "ERR EACCES");
    expect(&out, "inroot", "ERR EACCES");
    expect(&out, "twin", "OK plain-pub");
    expect(&out, "twin2", "OK plain-pub");
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
}

/// `io_uring` `IORING_OP_OPENAT` through ctypes: the open runs in the kernel (possibly in an
/// io-wq worker), still through `security_file_open`.
const IO_URING: &str = r"
import mmap
libc = ctypes.CDLL(None, use_errno=True)
U32 = ctypes.c_uint32
class SqOff(ctypes.Structure):
    _fields_ = [(n, U32) for n in ('head', 'tail', 'ring_mask', 'ring_entries', 'flags', 'dropped', 'array', 'resv1')] + [('user_addr', ctypes.c_uint64)]
class CqOff(ctypes.Structure):
    _fields_ = [(n, U32) for n in ('head', 'tail', 'ring_mask', 'ring_entries', 'overflow', 'cqes', 'flags', 'resv1')] + [('user_addr', ctypes.c_uint64)]
class Params(ctypes.Structure):
    _fields_ = [(n, U32) for n in ('sq_entries', 'cq_entries', 'flags', 'sq_thread_cpu', 'sq_thread_idle', 'features', 'wq_fd')] + [('resv', U32 * 3), ('sq_off', SqOff), ('cq_off', CqOff)]
def uring():
    p = Params()
    fd = libc.syscall(425, 4, ctypes.byref(p))
    if fd < 0:
        return None, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())
    prot, flags = mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED | mmap.MAP_POPULATE
    sq_size = p.sq_off.array + p.sq_entries * 4
    cq_size = p.cq_off.cqes + p.cq_entries * 16
    sq = mmap.mmap(fd, max(sq_size, cq_size), flags, prot, offset=0)
    cq = sq if p.features & 1 else mmap.mmap(fd, cq_size, flags, prot, offset=0x8000000)
    sqes = mmap.mmap(fd, p.sq_entries * 64, flags, prot, offset=0x10000000)
    return (fd, p, sq, cq, sqes), None
def uring_open(ring, path):
    fd, p, sq, cq, sqes = ring
    buf = ctypes.create_string_buffer(path.encode())
    u32 = lambda m, off: int.from_bytes(m[off:off + 4], 'little')
    tail = u32(sq, p.sq_off.tail)
    idx = tail & u32(sq, p.sq_off.ring_mask)
    sqe = bytearray(64)
    sqe[0] = 18  # IORING_OP_OPENAT
    sqe[4:8] = (-100).to_bytes(4, 'little', signed=True)  # AT_FDCWD
    sqe[16:24] = ctypes.addressof(buf).to_bytes(8, 'little')
    sqe[28:32] = os.O_RDONLY.to_bytes(4, 'little')
    sqe[32:40] = (7).to_bytes(8, 'little')
    sqes[idx * 64:idx * 64 + 64] = bytes(sqe)
    arr = p.sq_off.array + idx * 4
    sq[arr:arr + 4] = idx.to_bytes(4, 'little')
    sq[p.sq_off.tail:p.sq_off.tail + 4] = (tail + 1).to_bytes(4, 'little')
    if libc.syscall(426, fd, 1, 1, 1, None, 0) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    head = u32(cq, p.cq_off.head)
    cqe = p.cq_off.cqes + (head & u32(cq, p.cq_off.ring_mask)) * 16
    res = int.from_bytes(cq[cqe + 8:cqe + 12], 'little', signed=True)
    cq[p.cq_off.head:p.cq_off.head + 4] = (head + 1).to_bytes(4, 'little')
    if res < 0:
        raise OSError(-res, os.strerror(-res))
    return os.read(res, 64).decode()
ring, why = uring()
if ring is None:
    print('SKIP io_uring_setup failed:', why, flush=True)
else:
    t('deny', lambda: uring_open(ring, B + '/pub/secret/key'))
    t('twin', lambda: uring_open(ring, B + '/pub/plain'))
";

/// A denied file opened by an `io_uring` `IORING_OP_OPENAT` (no `openat` system call): denied
/// all the same; the twin read through the ring works. Skipped only where `io_uring` itself
/// is unavailable.
#[test]
fn fs_escape_io_uring_openat() {
    if !lsm_or_skip("fs_escape_io_uring") {
        return;
    }
    let tree = Tree::new("iouring");
    let out = tree.run(IO_URING);
    if let Some(why) = out.stdout.lines().find(|l| l.starts_with("SKIP ")) {
        // Only io_uring itself being unavailable (disabled by sysctl, not built) skips.
        println!("SKIPPED fs_escape_io_uring_openat: {why}");
        assert!(!out.stdout.contains("deny "), "{out:#?}");
        return;
    }
    expect(&out, "deny", "ERR EACCES");
    expect(&out, "twin", "OK plain-pub");
    expect_audit(
        &out,
        "file_open",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
}

/// A file under a suffix deny rule (`**/id_rsa`) at a 4000-byte path, beyond the exact-path
/// and prefix keys: read and unlink are denied by its last bytes; other files in the same
/// deep directory read and write.
#[test]
fn fs_escape_long_path_suffix_deny() {
    if !lsm_or_skip("fs_escape_long_path") {
        return;
    }
    let tree = Tree::new("long");
    // A directory chain under the workspace so that `<deep>/id_rsa` is exactly 4000 bytes:
    // past the exact key (504) and the tries' 252 bytes, judged by its last bytes.
    let mut deep = tree.path("ws");
    let room = |deep: &str| 4000 - "/id_rsa".len() - 1 - deep.len();
    while room(&deep) > 255 {
        deep.push('/');
        deep.push_str(&"d".repeat(200));
    }
    let last = room(&deep);
    deep.push('/');
    deep.push_str(&"e".repeat(last));
    std::fs::create_dir_all(&deep).expect("create deep dirs");
    let rel = deep
        .strip_prefix(&format!("{}/", tree.base))
        .expect("under base")
        .to_owned();
    let mut walk = tree.path("ws");
    for part in rel.split('/').skip(1) {
        walk.push('/');
        walk.push_str(part);
        set_mode(Path::new(&walk), 0o777);
    }
    let key = format!("{deep}/id_rsa");
    assert_eq!(key.len(), 4000);
    tree.file(&format!("{rel}/id_rsa"), "PRIVATE KEY");
    tree.file(&format!("{rel}/notes"), "notes");
    let out = tree.run(&format!(
        "D = {deep:?}\n\
         t('read', lambda: rd(D + '/id_rsa'))\n\
         t('unlink', lambda: os.unlink(D + '/id_rsa'))\n\
         t('create', lambda: open(D + '/sub-id_rsa', 'w').close())\n\
         t('plant', lambda: os.rename(D + '/notes', D + '/id_rsa2') or os.rename(D + '/id_rsa2', D + '/notes'))\n\
         t('twin', lambda: rd(D + '/notes'))\n\
         t('twinw', lambda: open(D + '/new', 'w').write(3 * 'x'))\n"
    ));
    expect(&out, "read", "ERR EACCES");
    expect(&out, "unlink", "ERR EACCES");
    expect(&out, "create", "OK");
    expect(&out, "plant", "OK");
    expect(&out, "twin", "OK notes");
    expect(&out, "twinw", "OK 3");
    expect_audit(&out, "file_open", &key, "**/id_rsa");
    expect_audit(&out, "path_unlink", &key, "**/id_rsa");
    assert!(Path::new(&key).exists());
}

/// Every way to change a read-only tree (write, append, `O_TRUNC`, `truncate`, create,
/// `mkdir`, unlink, `chmod`, symlink, FIFO, hard link) is denied and audited by its hook;
/// reading it works and the file is unchanged.
#[test]
fn fs_writes_into_read_only_tree_are_denied() {
    if !lsm_or_skip("fs_read_only_tree") {
        return;
    }
    let tree = Tree::new("readonly");
    let out = tree.run(
        "F = B + '/ro/file'\n\
         t('read', lambda: rd(F))\n\
         t('write', lambda: open(F, 'w'))\n\
         t('append', lambda: open(F, 'a'))\n\
         t('trunc', lambda: os.open(F, os.O_RDONLY | os.O_TRUNC))\n\
         t('truncate', lambda: os.truncate(F, 0))\n\
         t('create', lambda: open(B + '/ro/new', 'x'))\n\
         t('mkdir', lambda: os.mkdir(B + '/ro/d'))\n\
         t('unlink', lambda: os.unlink(F))\n\
         t('chmod', lambda: os.chmod(F, 0o600))\n\
         t('symlink', lambda: os.symlink('/etc/hostname', B + '/ro/sl'))\n\
         t('fifo', lambda: os.mkfifo(B + '/ro/fifo'))\n\
         t('link', lambda: os.link(B + '/ws/plain', B + '/ro/hl'))\n\
         t('after', lambda: rd(F))\n",
    );
    expect(&out, "read", "OK read-only");
    for label in [
        "write", "append", "trunc", "truncate", "create", "mkdir", "unlink", "chmod", "symlink",
        "fifo", "link",
    ] {
        expect(&out, label, "ERR EACCES");
    }
    expect(&out, "after", "OK read-only");
    let rule = format!("{}/ro/**", tree.base);
    let file = tree.path("ro/file");
    expect_audit(&out, "file_open", &file, &rule);
    expect_audit(&out, "path_truncate", &file, &rule);
    expect_audit(&out, "path_mknod", &tree.path("ro/new"), &rule);
    expect_audit(&out, "path_mkdir", &tree.path("ro/d"), &rule);
    expect_audit(&out, "path_unlink", &file, &rule);
    expect_audit(&out, "path_chmod", &file, &rule);
    expect_audit(&out, "path_symlink", &tree.path("ro/sl"), &rule);
    expect_audit(&out, "path_mknod", &tree.path("ro/fifo"), &rule);
    expect_audit(&out, "path_link", &tree.path("ro/hl"), &rule);
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o666);
}

/// The allowed twin of the filesystem escapes: create, append, rename, replace, link,
/// symlink, `chmod`, truncate, FIFO, unlink and `rmdir` in the workspace all work, with no
/// denial.
#[test]
fn fs_workspace_create_rename_delete_all_work() {
    if !lsm_or_skip("fs_workspace_ops") {
        return;
    }
    let tree = Tree::new("workspace");
    let out = tree.run(
        "W = B + '/ws'\n\
         t('create', lambda: open(W + '/a', 'w').write('hello'))\n\
         t('append', lambda: open(W + '/a', 'a').write('!'))\n\
         t('read', lambda: rd(W + '/a'))\n\
         t('mkdir', lambda: os.makedirs(W + '/d/e'))\n\
         t('rename', lambda: os.rename(W + '/a', W + '/d/e/b'))\n\
         t('replace', lambda: open(W + '/x', 'w').write('plain-ws') and os.replace(W + '/x', W + '/d/e/b'))\n\
         t('link', lambda: os.link(W + '/d/e/b', W + '/c'))\n\
         t('symlink', lambda: os.symlink(W + '/c', W + '/s'))\n\
         t('chmod', lambda: os.chmod(W + '/c', 0o600))\n\
         t('truncate', lambda: os.truncate(W + '/c', 2))\n\
         t('viasym', lambda: rd(W + '/s'))\n\
         t('fifo', lambda: os.mkfifo(W + '/f'))\n\
         t('unlink', lambda: [os.unlink(W + p) for p in ('/c', '/s', '/f', '/d/e/b')] and None)\n\
         t('rmdir', lambda: os.rmdir(W + '/d/e') or os.rmdir(W + '/d'))\n\
         t('left', lambda: ' '.join(sorted(os.listdir(W))))\n",
    );
    for (label, want) in [
        ("create", "OK 5"),
        ("append", "OK 1"),
        ("read", "OK hello!"),
        ("mkdir", "OK"),
        ("rename", "OK"),
        ("replace", "OK"),
        ("link", "OK"),
        ("symlink", "OK"),
        ("chmod", "OK"),
        ("truncate", "OK"),
        ("viasym", "OK pl"),
        ("fifo", "OK"),
        ("unlink", "OK"),
        ("rmdir", "OK"),
        ("left", "OK plain"),
    ] {
        expect(&out, label, want);
    }
    assert!(out.denials("filesystem").is_empty(), "{out:#?}");
}

/// With full preemption a task can be preempted inside `file_open`, after its path is in
/// the per-CPU scratch buffer and before the lookups, and another task's program can then
/// rewrite that buffer. Two tasks of one sandbox on one CPU open, for seconds, two paths of
/// the same length: `public` (an exact allow) and `secret` (no rule: default deny, so no
/// inode entry backs the path check). Not one open of `secret` may succeed, and `public`
/// must keep opening; a run whose buffer was taken over is denied, so a few opens of
/// `public` may fail: their count is printed.
#[test]
fn fs_escape_preempted_open_judged_on_another_tasks_path() {
    if !lsm_or_skip("fs_escape_preempted_open_judged_on_another_tasks_path") {
        return;
    }
    let Some(_full) = FullPreemption::switch() else {
        println!(
            "SKIPPED fs_escape_preempted_open_judged_on_another_tasks_path: no run-time preemption switch"
        );
        return;
    };
    let tree = Tree::new("preempt");
    tree.dir("d");
    tree.file("d/public", "public");
    tree.file("d/secret", "SECRET");
    let b = &tree.base;
    let policy = format!(
        "filesystem:\n  allow:\n    - {b}/d/public\n  read_only:\n    - /usr/**\n    - /etc/**\n    \
         - /proc/**\n    - /dev/**\n"
    );
    let script = contend(
        &format!("B = {b:?}"),
        "os.close(os.open(B + '/d/' + name, os.O_RDONLY))",
        "secret",
        "public",
    );
    let out = run_sandboxed(&tree.scratch, &policy, &[PYTHON, "-I", "-c", &script]);
    let (secret_ok, secret_denied) = out.counts("secret");
    let (public_ok, public_denied) = out.counts("public");
    println!(
        "preempted opens: secret {secret_ok} opened / {secret_denied} denied; public \
         {public_ok} opened / {public_denied} denied (buffer taken over)"
    );
    assert_eq!(secret_ok, 0, "the denied file was opened: {}", out.brief());
    assert!(secret_denied > 0 && public_ok > 0, "{}", out.brief());
    expect_audit(
        &out,
        "file_open",
        &tree.path("d/secret"),
        "default deny (no rule allows this)",
    );
}

/// A watch reports the names of entries created or opened in a directory and when: an
/// inotify watch (and a fanotify or dnotify one, the same hook) is judged as a read of
/// the watched path. On a denied directory and on a denied file: `EACCES` with a
/// `path_notify` record; the twins on the workspace and a readable directory succeed.
#[test]
fn fs_escape_watch_on_denied_directory() {
    if !lsm_or_skip("fs_watch") {
        return;
    }
    let tree = Tree::new("watch");
    let out = tree.run(
        "libc = ctypes.CDLL(None, use_errno=True)\n\
         fd = libc.inotify_init1(0)\n\
         def watch(p):\n    \
             r = libc.inotify_add_watch(fd, p.encode(), 0x100 | 0x20)\n    \
             if r < 0:\n        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n    \
             return 'watched'\n\
         t('secretdir', lambda: watch(B + '/pub/secret'))\n\
         t('secretfile', lambda: watch(B + '/pub/secret/key'))\n\
         t('ws', lambda: watch(B + '/ws'))\n\
         t('pub', lambda: watch(B + '/pub'))\n",
    );
    expect(&out, "secretdir", "ERR EACCES");
    expect(&out, "secretfile", "ERR EACCES");
    expect(&out, "ws", "OK watched");
    expect(&out, "pub", "OK watched");
    expect_audit(
        &out,
        "path_notify",
        &tree.path("pub/secret"),
        &secret_rule(&tree),
    );
    expect_audit(
        &out,
        "path_notify",
        &tree.path("pub/secret/key"),
        &secret_rule(&tree),
    );
    expect_no_audit(&out, &tree.path("ws"));
    expect_no_audit(&out, &tree.path("pub"));
}
