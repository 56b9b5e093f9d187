// One set of logging macros that routes to `log`, to `defmt`, or to nothing,
// depending on the features, so the protocol core can log on a hosted build and on
// a bare-metal one with the same source (the smoltcp pattern).

#[cfg(feature = "log")]
#[allow(unused_macros)]
macro_rules! net_log {
    (trace, $($arg:expr),*) => { log::trace!($($arg),*) };
    (debug, $($arg:expr),*) => { log::debug!($($arg),*) };
    (warn, $($arg:expr),*) => { log::warn!($($arg),*) };
}

#[cfg(all(feature = "defmt", not(feature = "log")))]
#[allow(unused_macros)]
macro_rules! net_log {
    (trace, $($arg:expr),*) => { defmt::trace!($($arg),*) };
    (debug, $($arg:expr),*) => { defmt::debug!($($arg),*) };
    (warn, $($arg:expr),*) => { defmt::warn!($($arg),*) };
}

#[cfg(not(any(feature = "log", feature = "defmt")))]
#[allow(unused_macros)]
macro_rules! net_log {
    ($level:ident, $($arg:expr),*) => {{ $( let _ = &$arg; )* }};
}

#[allow(unused_macros)]
macro_rules! net_trace {
    ($($arg:expr),*) => (net_log!(trace, $($arg),*));
}

#[allow(unused_macros)]
macro_rules! net_debug {
    ($($arg:expr),*) => (net_log!(debug, $($arg),*));
}

#[allow(unused_macros)]
macro_rules! net_warn {
    ($($arg:expr),*) => (net_log!(warn, $($arg),*));
}
