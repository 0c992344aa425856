"""CESAR worker: arq jobs mirrored into job_queue, reconciler and cron duties"""
