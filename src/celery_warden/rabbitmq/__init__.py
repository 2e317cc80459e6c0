"""RabbitMQ queue arguments on a fleet that already has its queues.

* :mod:`.probe`: what an existing queue was declared with, learned from RabbitMQ's refusals
  (no management plugin needed);
* :mod:`.policy`: the policy that gives the queues message TTL and dead-lettering;
* :mod:`.adoption`: the fleet's queues compared with what Warden declares, and what to do;
* :mod:`.hooks`: a refused declaration becomes one clear message in workers and publishers.
"""
