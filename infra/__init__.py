"""What every AeroVision service shares at run time, beside the wire types of ``contracts``.

The NATS connection, stream and bucket declarations and the consume loop (``nats_layout``), the
file store in the Object Store format (``objects``), the local spool (``spool``) and the C-level
process settings (``process``). ``contracts`` stays importable alone by any subscriber; this
package is the services' own plumbing and may change with them.
"""
