//! `sprig start|stop|restart`: daemonize, pid file, signals, the event loop. Not built yet.
