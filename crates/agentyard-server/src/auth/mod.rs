//! Authentication and authorization (see `docs/design/auth.md`): API tokens ([`secret`]), their
//! lookup ([`cache`]), the layer that checks every request ([`gate`]) and the [`Caller`] it
//! leaves for handlers.

pub mod cache;
mod caller;
pub mod gate;
pub mod issue;
pub mod secret;

pub use cache::TokenCache;
pub use caller::Caller;
pub use secret::Secret;
