"""The service shell around the kernel: process life-cycle, config and hot reload, journal, Redis, metrics and
status, sd_notify, commands, secrets, logging and the command line."""
