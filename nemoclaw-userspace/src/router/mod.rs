//! The privacy router (`nemoclaw router`): an unprivileged HTTP proxy on the host that
//! every inference call of a sandbox goes through. It learns from the kernel which sandbox
//! sent a request (`identify`), takes that sandbox's `inference:` rules from the daemon
//! (`directory`), reads the request into one view of its text (`request`), scans it
//! (`scan`, on `nemoclaw-detect`), decides (`decide`), forwards it to the local or the
//! cloud backend with the host's credentials (`upstream`; an Anthropic request for the
//! OpenAI-speaking local model translated both ways by `translate`), streams the reply
//! back (`reply`, `usage`) and writes one audit record (`audit`). `pipeline` strings the stages
//! together; `server` accepts connections; `config` is the host's `router.yaml`.
//! `docs/router.md` is the user's guide.

pub mod audit;
pub mod config;
pub mod decide;
pub mod directory;
pub mod error;
pub mod events;
pub mod identify;
pub mod mask;
pub mod pipeline;
pub mod reply;
pub mod request;
pub mod restore;
pub mod scan;
pub mod server;
pub mod translate;
pub mod upstream;
pub mod usage;
