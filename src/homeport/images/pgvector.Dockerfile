# PostgreSQL 17 with pgvector from Debian 13's own packages (no registry here).
# Behaves like the official image for what homeport uses: POSTGRES_PASSWORD / POSTGRES_USER / POSTGRES_DB
# (or their *_FILE variants) on first start, data in /var/lib/postgresql/data, listens on 5432.
# On homeport/stackbase:13 (build.sh: small, as every Docker host of the tests loads it). Without LLVM: PostgreSQL
# runs its queries without JIT when llvmjit.so is absent (src/backend/jit/jit.c: provider_init gives up quietly).
FROM homeport/stackbase:13
RUN apt-get -o Acquire::Retries=5 update \
 && apt-get -o Acquire::Retries=5 install -y --no-install-recommends postgresql-17 postgresql-17-pgvector \
 && rm -rf /usr/lib/x86_64-linux-gnu/libLLVM* /usr/lib/x86_64-linux-gnu/libz3* /usr/lib/postgresql/17/lib/bitcode \
      /usr/lib/postgresql/17/lib/llvmjit* /var/cache/apt/* /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
      /usr/share/locale/* \
 && mkdir -p /var/lib/postgresql/data /run/postgresql && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
COPY pg-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/17/bin:$PATH PGDATA=/var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
