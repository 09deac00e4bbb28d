"""The hall register: halls, their services (业务) and counters (窗口), kept by staff."""
