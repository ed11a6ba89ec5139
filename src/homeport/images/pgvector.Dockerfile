# PostgreSQL 17 with pgvector from Debian 13's own packages (no registry here).
# Behaves like the official image for what homeport uses: POSTGRES_PASSWORD / POSTGRES_USER / POSTGRES_DB
# (or their *_FILE variants) on first start, data in /var/lib/postgresql/data, listens on 5432.
FROM homeport/debian:13
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-17 postgresql-17-pgvector \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /run/postgresql && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
COPY pg-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/17/bin:$PATH PGDATA=/var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
