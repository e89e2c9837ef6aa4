# BioBERT for TensorFlow 2: the container the one-click scripts run in.
#   bash scripts/docker/build.sh      # docker build -t bert .
#   bash scripts/docker/launch.sh     # interactive shell, repo at /workspace/bert, results at /results
ARG FROM_IMAGE_NAME=tensorflow/tensorflow:2.21.0-gpu
FROM ${FROM_IMAGE_NAME}

ENV DEBIAN_FRONTEND=noninteractive
# openmpi-bin: mpirun for num_gpu > 1 (the Python side uses Horovod when it is installed,
# tf.distribute otherwise).
RUN apt-get update \
 && apt-get install -y --no-install-recommends openmpi-bin git \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/bert
COPY requirements.txt /workspace/bert/requirements.txt
RUN python -m pip install --no-cache-dir -r requirements.txt

COPY . /workspace/bert
# Results go to the /results mount (scripts/docker/launch.sh), as in NVIDIA's container.
ENV PYTHONPATH=/workspace/bert \
    RESULTS_DIR=/results
