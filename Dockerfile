# The node image: Ray 2.60 with ragtune installed from its wheel by cluster/install-ragtune.sh,
# the script the cluster launcher's setup_commands and the tests' second node run too.
#   make image IMAGE=REGISTRY/ragtune:0.1.0        (CPU tiers; runs `make dist` first)
#   make image-gpu IMAGE=REGISTRY/ragtune:0.1.0    (GPU tiers: the -gpu Ray image, ragtune[gpu])
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311
FROM ${BASE_IMAGE}
ARG WHEEL
ARG EXTRAS=""
COPY --chown=1000:100 cluster/install-ragtune.sh ${WHEEL} ${WHEEL}.sha256 /tmp/ragtune/
RUN wheel="/tmp/ragtune/$(basename "${WHEEL}")" \
    && PYTHON=python bash /tmp/ragtune/install-ragtune.sh "$wheel" ${EXTRAS} \
    && rm -rf /tmp/ragtune
