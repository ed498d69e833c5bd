"""Issue 15: project task order ("fewest_labels" / "active") with ``Task.priority`` (the next-task
index becomes (project, claims, -priority, id), partial on open tasks), and automatic extra labels
on low agreement (``target_agreement``, ``max_labels_per_task``)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0007_review_adjudication'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='task',
            name='task_open_by_claims',
        ),
        migrations.AddField(
            model_name='project',
            name='max_labels_per_task',
            field=models.PositiveSmallIntegerField(db_default=5, default=5, help_text="Cap on a task's labels when extra labels are requested automatically."),
        ),
        migrations.AddField(
            model_name='project',
            name='target_agreement',
            field=models.FloatField(blank=True, help_text='When a task has its labels and the share of the most common verdict is below this, it asks for one more label (up to max_labels_per_task). Empty: off.', null=True),
        ),
        migrations.AddField(
            model_name='project',
            name='task_order',
            field=models.CharField(choices=[('fewest_labels', 'Fewest labels first, oldest first'), ('active', 'Fewest labels first, then the most informative pair')], db_default='fewest_labels', default='fewest_labels', help_text='Among the tasks with the fewest labels, which to offer first.', max_length=16),
        ),
        migrations.AddField(
            model_name='task',
            name='priority',
            field=models.FloatField(db_default=0.0, default=0.0, help_text='Among tasks with equal claims, higher is offered first (task_order=active: the expected information of one more vote; 0 otherwise).'),
        ),
        migrations.AddIndex(
            model_name='task',
            index=models.Index(condition=models.Q(('claims__lt', models.F('target_labels'))), fields=['project', 'claims', '-priority', 'id'], name='task_open_by_claims_priority'),
        ),
        migrations.AddConstraint(
            model_name='project',
            constraint=models.CheckConstraint(condition=models.Q(('task_order__in', ['fewest_labels', 'active'])), name='project_task_order_valid'),
        ),
        migrations.AddConstraint(
            model_name='project',
            constraint=models.CheckConstraint(condition=models.Q(('target_agreement__isnull', True), models.Q(('target_agreement__gt', 0), ('target_agreement__lte', 1)), _connector='OR'), name='project_target_agreement_range'),
        ),
        migrations.AddConstraint(
            model_name='project',
            constraint=models.CheckConstraint(condition=models.Q(('max_labels_per_task__gte', 1), ('max_labels_per_task__lte', 100)), name='project_max_labels_range'),
        ),
    ]
