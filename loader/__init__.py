"""logship loader: exactly-once manifest COPY from the lake into the warehouse."""
