"""The watcher's decisions as pure functions over plain data: the object cache and its relist diff, the
detectors, and the alert book (fire once, resolve with hysteresis). No I/O library may be imported here."""
