"""The foundation every layer may import: errors, atomic writes, progress, devices and precision, seeding, class
labels, settings."""
