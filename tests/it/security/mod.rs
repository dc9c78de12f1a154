//! Security: each test reproduces an attack a hostile user tried (issue 12) and shows it fails;
//! named after the attack, on both storage backends where storage is involved.

mod accounts;
mod artifacts;
mod transport;
