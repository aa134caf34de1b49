//! Renames that would move objects out from under a rule, or in (issue 13, class 1).
//!
//! Path rules are judged on the path at the time of access, so a directory rename changes
//! which rules match everything beneath it. A directory whose source or destination path
//! has a rule anchored beneath it, or whose name a `**/dir/name` rule spans, is refused
//! with `EXDEV` (as Landlock refuses moves its `REFER` right forbids; `mv` then copies,
//! file by file, each judged); other renames are judged as before, and objects stay
//! denied at their new paths.

use std::path::Path;

use super::{Tree, expect, expect_audit, expect_audit_errno, expect_no_audit};
use crate::support::lsm_or_skip;

/// `xchg(a, b)`: `renameat2(a, b, RENAME_EXCHANGE)`, which Python's `os` does not offer.
const EXCHANGE: &str = r"
libc = ctypes.CDLL(None, use_errno=True)
def xchg(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
";

/// `{b}/ws/proj/private/**` is denied inside the writable workspace: its parent `ws/proj`
/// cannot move (the key inside would leave the rule) nor be exchanged with a directory
/// the agent filled (whose files would enter it); directories elsewhere still move.
#[test]
fn fs_escape_rename_ancestor_of_denied_tree() {
    if !lsm_or_skip("fs_escape_rename_ancestor") {
        return;
    }
    let tree = Tree::new("rename-tree");
    tree.dir("ws/proj");
    tree.dir("ws/proj/private");
    tree.file("ws/proj/private/key", "PRIVATE");
    tree.file("ws/proj/notes", "notes");
    tree.dir("ws/plaindir");
    tree.file("ws/plaindir/f", "plain");
    let out = tree.run(&format!(
        "{EXCHANGE}W = B + '/ws'\n\
         t('out', lambda: os.rename(W + '/proj', W + '/moved'))\n\
         t('gone', lambda: rd(W + '/moved/private/key'))\n\
         t('stage', lambda: os.makedirs(W + '/stage/private') or open(W + '/stage/private/planted', 'w').write('xy'))\n\
         t('swap', lambda: xchg(W + '/stage', W + '/proj'))\n\
         t('into', lambda: os.rename(W + '/stage/private', W + '/proj/private'))\n\
         t('still', lambda: rd(W + '/proj/private/key'))\n\
         t('twin', lambda: os.rename(W + '/plaindir', W + '/plaindir2'))\n\
         t('twinread', lambda: rd(W + '/plaindir2/f'))\n\
         t('under', lambda: os.rename(W + '/stage', W + '/proj/stage'))\n\
         t('underread', lambda: rd(W + '/proj/stage/private/planted'))\n\
         t('file', lambda: os.rename(W + '/proj/notes', W + '/proj/notes2'))\n"
    ));
    for (label, want) in [
        ("out", "ERR EXDEV"),
        ("gone", "ERR ENOENT"),
        ("stage", "OK 2"),
        ("swap", "ERR EXDEV"),
        ("into", "ERR EACCES"),
        ("still", "ERR EACCES"),
        ("twin", "OK"),
        ("twinread", "OK plain"),
        ("under", "OK"),
        ("underread", "OK xy"),
        ("file", "OK"),
    ] {
        expect(&out, label, want);
    }
    let rule = format!("{}/ws/proj/private/**", tree.base);
    expect_audit_errno(&out, "path_rename", &tree.path("ws/proj"), &rule, "EXDEV");
    expect_audit(&out, "path_rename", &tree.path("ws/proj/private"), &rule);
    expect_audit(&out, "file_open", &tree.path("ws/proj/private/key"), &rule);
    expect_no_audit(&out, &tree.path("ws/plaindir"));
    expect_no_audit(&out, &tree.path("ws/stage"));
    assert_eq!(
        std::fs::read_to_string(tree.path("ws/proj/private/key")).expect("key in place"),
        "PRIVATE"
    );
    assert!(!Path::new(&tree.path("ws/proj/private/planted")).exists());
}

/// `**/.git/config` (the baseline's own rule): a directory named `.git` cannot be renamed
/// away (its `config`, here existing at policy load, would leave the rule), and no
/// directory can be renamed to `.git` (a `config` the agent wrote there would enter it:
/// a planted `core.fsmonitor` runs on the host's next `git status`). Renaming the
/// repository keeps `.git/config` under the rule, so it moves, and stays denied.
#[test]
fn fs_escape_rename_git_dir_around_suffix_rule() {
    if !lsm_or_skip("fs_escape_rename_suffix") {
        return;
    }
    let tree = Tree::new("rename-suffix");
    tree.dir("ws/repo");
    tree.dir("ws/repo/.git");
    tree.file("ws/repo/.git/config", "[core]");
    tree.file("ws/gitfile", "gitdir: elsewhere");
    let out = tree.run(&format!(
        "{EXCHANGE}W = B + '/ws'\n\
         t('hide', lambda: os.rename(W + '/repo/.git', W + '/repo/dotgit'))\n\
         t('gone', lambda: rd(W + '/repo/dotgit/config'))\n\
         t('stage', lambda: os.makedirs(W + '/repo2/notgit') or open(W + '/repo2/notgit/config', 'w').write('[core]fsmonitor=x'))\n\
         t('plant', lambda: os.rename(W + '/repo2/notgit', W + '/repo2/.git'))\n\
         t('swap', lambda: xchg(W + '/repo/.git', W + '/repo2/notgit'))\n\
         t('repo', lambda: os.rename(W + '/repo', W + '/repo3'))\n\
         t('still', lambda: rd(W + '/repo3/.git/config'))\n\
         t('twin', lambda: os.rename(W + '/repo2/notgit', W + '/repo2/git-notes'))\n\
         t('twinread', lambda: rd(W + '/repo2/git-notes/config'))\n\
         t('gitfile', lambda: os.makedirs(W + '/wt') or os.rename(W + '/gitfile', W + '/wt/.git'))\n"
    ));
    for (label, want) in [
        ("hide", "ERR EXDEV"),
        ("gone", "ERR ENOENT"),
        ("stage", "OK 17"),
        ("plant", "ERR EXDEV"),
        ("swap", "ERR EXDEV"),
        ("repo", "OK"),
        ("still", "ERR EACCES"),
        ("twin", "OK"),
        ("twinread", "OK [core]fsmonitor=x"),
        ("gitfile", "OK"),
    ] {
        expect(&out, label, want);
    }
    let rule = "**/.git/config";
    expect_audit_errno(
        &out,
        "path_rename",
        &tree.path("ws/repo/.git"),
        rule,
        "EXDEV",
    );
    expect_audit_errno(
        &out,
        "path_rename",
        &tree.path("ws/repo2/.git"),
        rule,
        "EXDEV",
    );
    expect_audit(&out, "file_open", &tree.path("ws/repo3/.git/config"), rule);
    expect_no_audit(&out, &tree.path("ws/repo2/git-notes"));
    expect_no_audit(&out, &tree.path("ws/wt/.git"));
    assert!(!Path::new(&tree.path("ws/repo2/.git")).exists());
}
